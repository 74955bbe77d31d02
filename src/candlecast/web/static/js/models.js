// Models: the registry (/api/models) with every figure beside its baselines.
"use strict";
(function () {
  const CC = window.CC;
  const TARGETS = ["open", "high", "low", "close", "range"];

  const skillCell = (v) => CC.h("td", { cls: "num " + (v > 0.0005 ? "up" : v < -0.0005 ? "down" :
    ""), text: CC.signed(v, 3) });

  function champion(model) {
    const v = (model.metrics && model.metrics.validation) || {};
    CC.text("champion-id", "model #" + model.id);
    CC.text("champion-meta", model.algorithm + " · trained " + CC.time(model.created_at) +
      " on " + CC.time(model.train_start) + " – " + CC.time(model.train_end) +
      " · validation from " + CC.time(model.metrics.validation_start) + " (" +
      (model.metrics.split_total - model.metrics.split_train) + " held-out candles)");
    const rows = TARGETS.filter((t) => v[t]).map((t) => {
      const f = v[t];
      return CC.h("tr", {}, [
        CC.h("td", { text: t }), CC.h("td", { cls: "num", text: CC.price(f.mae) }),
        CC.h("td", { text: f.baseline || "–" }),
        CC.h("td", { cls: "num", text: CC.price(f.baseline_mae) }), skillCell(f.skill),
        CC.h("td", { text: f.strong_baseline || "" }),
        CC.h("td", { cls: "num", text: f.strong_baseline_mae == null ? "" :
          CC.price(f.strong_baseline_mae) }),
        f.strong_skill == null ? CC.h("td", {}) : skillCell(f.strong_skill),
        CC.h("td", { cls: "sub wrap", text: CC.skillNote(f.skill, f.baseline || "the baseline") +
          (f.har_skill == null ? "" : " · vs the HAR anchor (MAE " +
            CC.price(f.har_baseline_mae) + "): " + CC.signed(f.har_skill, 3)) }),
      ]);
    });
    document.querySelector("#champion-table tbody").replaceChildren(...rows);
    const d = v.direction;
    CC.text("champion-direction", d ? "Direction: Brier " + CC.num(d.brier, 5) +
      " vs climatology " + CC.num(d.brier_baseline, 5) + (d.weight === 0 ?
      " — gated to climatology: the classifier showed no skill on validation." : ".") :
      "Direction: no validation figures.");
  }

  function registry(models, championId) {
    const body = document.querySelector("#registry tbody");
    body.replaceChildren(...models.map((m) => {
      const v = (m.metrics && m.metrics.validation) || {};
      const cell = (t) => {
        const f = v[t];
        if (!f) return CC.h("td", { cls: "num", text: "–" });
        const strong = f.strong_skill == null ? [] : [CC.h("span", { cls: "aside",
          text: "(" + CC.signed(f.strong_skill, 3) + ")" })];
        const har = f.har_skill == null ? [] : [CC.h("span", { cls: "aside",
          text: "HAR " + CC.signed(f.har_skill, 3) })];
        return CC.h("td", { cls: "num" }, [CC.signed(f.skill, 3), ...strong, ...har]);
      };
      const d = v.direction || {};
      const status = m.id === championId ? "good" : m.status === "retired" ? "" : "warn";
      return CC.h("tr", { cls: m.id === championId ? "champion" : "" }, [
        CC.h("td", { text: "#" + m.id }),
        CC.h("td", {}, [CC.h("span", { cls: "badge " + status, text: m.status })]),
        CC.h("td", { text: CC.time(m.created_at) }),
        CC.h("td", { cls: "wrap" }, [CC.time(m.train_start) + " –", CC.h("br"),
          CC.time(m.train_end)]),
        cell("close"), cell("high"), cell("low"), cell("range"),
        CC.h("td", { cls: "num", text: CC.num(d.brier, 4) + " / " + CC.num(d.brier_baseline, 4) }),
      ]);
    }));
    const decisions = document.querySelector("#decisions tbody");
    decisions.replaceChildren(...models.filter((m) => m.decision).map((m) => {
      const d = m.decision;
      return CC.h("tr", {}, [
        CC.h("td", { text: "#" + m.id }),
        CC.h("td", {}, [CC.h("span", { cls: "badge " + (d.promote ? "good" : "warn"),
          text: d.promote ? "promoted" : "kept as challenger" })]),
        CC.h("td", { cls: "wrap", text: d.reason || "–" }),
        CC.h("td", { cls: "num", text: CC.num(d.new_loss, 4) }),
        CC.h("td", { cls: "num", text: CC.num(d.champion_loss, 4) }),
        CC.h("td", { cls: "num", text: d.rows == null ? "–" : String(d.rows) }),
        CC.h("td", { text: d.champion_id == null ? "no champion" : "#" + d.champion_id }),
      ]);
    }));
  }

  async function load() {
    const answer = await CC.get("/api/models?limit=100");
    if (!answer.ok) {
      CC.empty("champion", "The registry could not be read", answer.detail || "HTTP " +
        answer.status);
      return CC.ready([]);
    }
    const models = answer.data.models || [];
    const championId = answer.data.champion_id;
    if (!models.length) {
      const status = CC.status();
      const why = status && !status.last_candle_time ? await CC.whyNoData() : null;
      const text = "No model has been trained yet. The first training starts right after " +
        "the backfill and takes about a minute; models then retrain on schedule.";
      CC.banner(why ? why.title + ": " + why.text : "", why && why.exchange ? "bad" : "warn");
      CC.empty("champion", "No model yet", text);
      CC.empty("registry-wrap", "The registry is empty", text);
      CC.empty("decisions-wrap", "No decisions yet", "Each training records whether its " +
        "model replaced the champion, and why.");
      return CC.ready([]);
    }
    const champ = models.find((m) => m.id === championId);
    if (champ) champion(champ);
    registry(models, championId);
    return CC.ready([]);
  }
  document.addEventListener("DOMContentLoaded", () => CC.onUpdate(() => load()));
})();
