// Forecasts: the prediction ledger (/api/ledger): scores as the evaluator computes them, and
// the recorded forecasts themselves, each beside persistence (the close it was made from).
"use strict";
(function () {
  const CC = window.CC;
  const RANGES = [1, 7, 30];
  const ROLL = 24;
  let days = 1;
  let token = 0;


  function kpis(m) {
    const close = m.targets && m.targets.close;
    const d = m.direction || {};
    const ci = d.accuracy_ci95 || [];
    const cov = m.close_interval || {};
    CC.text("k-mae", CC.price(close && close.mae));
    CC.text("k-mae-sub", "persistence " + CC.price(close && close.baseline_mae) + " · n=" + m.rows);
    const skill = close && close.skill;
    CC.text("k-skill", CC.signed(skill, 3), "kpi-value num " + (skill > 0 ? "up" : skill < 0 ?
      "down" : ""));
    CC.text("k-skill-sub", CC.skillNote(skill, "persistence"));
    CC.text("k-hit", CC.pct(d.accuracy, 1));
    CC.text("k-hit-sub", "95% CI " + CC.pct(ci[0], 1) + "–" + CC.pct(ci[1], 1) +
      " · coin 50% · WDA " + CC.num(d.wda, 3));
    CC.text("k-cov", CC.pct(cov.coverage, 1));
    CC.text("k-cov-sub", "target " + CC.pct(cov.level, 0) + " · mean width " +
      CC.price(cov.mean_width));
    CC.text("k-brier", CC.num(d.brier, 4));
    CC.text("k-brier-sub", "climatology " + CC.num(d.brier_baseline, 4) + " (lower is better)");
  }

  // Coverage of the ledger's central intervals per target (metrics.quantiles), beside the level.
  function coverage(m) {
    const q = m.quantiles;
    const body = document.querySelector("#coverage tbody");
    if (!body) return;
    if (!q) {
      body.replaceChildren(CC.h("tr", {}, [CC.h("td", { text: "no quantile forecasts in " +
        "this window" })]));
      return;
    }
    const levels = ["0.5", "0.8", "0.9", "0.95"];
    body.replaceChildren(...["close", "high", "low", "range"].filter((t) => q[t]).map((t) =>
      CC.h("tr", {}, [CC.h("td", { text: t }),
        ...levels.map((l) => CC.h("td", { cls: "num", text: CC.pct(q[t].coverage[l], 1) })),
        CC.h("td", { cls: "num", text: CC.signed(q[t].crps_skill, 3) })])));
  }

  function rows(p) {
    const out = [];
    for (let i = 0; i < p.time.length; i++) {
      const real = p.real_close[i];
      out.push({ t: p.time[i], x: CC.lx(p.time[i]), pred: p.pred_close[i], lo: p.close_lo[i],
        hi: p.close_hi[i], prob: p.prob_up[i], last: p.last_close[i], real: real,
        model: p.model_id[i], err: real == null ? null : p.pred_close[i] - real,
        perr: real == null || p.last_close[i] == null ? null : p.last_close[i] - real,
        q10: p.close_q100 ? p.close_q100[i] : null, q25: p.close_q250 ? p.close_q250[i] : null,
        q75: p.close_q750 ? p.close_q750[i] : null, q90: p.close_q900 ? p.close_q900[i] : null });
    }
    return out;
  }

  function drawLedger(r) {
    const c = CC.colors();
    const x = r.map((o) => o.x);
    const band = {
      type: "scatter", mode: "lines", name: "interval", x: x.concat(x.slice().reverse()),
      y: r.map((o) => o.hi).concat(r.map((o) => o.lo).reverse()), fill: "toself",
      fillcolor: c.shade, line: { width: 0 }, hoverinfo: "skip" };
    // The fan: 90% (close_lo/close_hi), 80% and 50% bands of the close's quantiles, darker inward.
    const fan = [["q10", "q90", "80%"], ["q25", "q75", "50%"]]
      .filter(([lo]) => r.some((o) => o[lo] != null))
      .map(([lo, hi, name]) => ({
        type: "scatter", mode: "lines", name: name + " band", x: x.concat(x.slice().reverse()),
        y: r.map((o) => o[hi]).concat(r.map((o) => o[lo]).reverse()), fill: "toself",
        fillcolor: c.shade, line: { width: 0 }, hoverinfo: "skip" }));
    return CC.plot("chart-ledger", [band, ...fan,
      { type: "scatter", mode: "lines", name: "predicted", x: x, y: r.map((o) => o.pred),
        line: { color: c.pred, width: 1.4 } },
      { type: "scatter", mode: "lines+markers", name: "realized", x: x, y: r.map((o) => o.real),
        line: { color: c.text, width: 1 }, marker: { size: 3 } },
      { type: "scatter", mode: "lines", name: "persistence", x: x, y: r.map((o) => o.last),
        line: { color: c.base, width: 1, dash: "dot" }, visible: "legendonly" },
    ], { xaxis: CC.localAxis(), yaxis: { tickformat: ",.0f" } });
  }

  function drawRolling(r) {
    const c = CC.colors();
    const scored = r.filter((o) => o.err != null && o.perr != null);
    const x = [], model = [], base = [], hit = [], lo = [], hi = [];
    let sm = 0, sb = 0, hits = 0, calls = 0;
    scored.forEach((o, i) => {
      sm += Math.abs(o.err); sb += Math.abs(o.perr);
      if (i >= ROLL) { sm -= Math.abs(scored[i - ROLL].err); sb -= Math.abs(scored[i - ROLL].perr); }
      const k = Math.min(i + 1, ROLL);
      x.push(o.x); model.push(sm / k); base.push(sb / k);
      if (o.prob != null) {
        calls += 1;
        if ((o.prob > 0.5) === (o.real > o.last)) hits += 1;
      }
      const ci = CC.wilson(hits, calls);
      hit.push(calls ? hits / calls : null); lo.push(ci[0]); hi.push(ci[1]);
    });
    CC.text("mae-note", "mean of the last " + ROLL + " scored forecasts");
    CC.text("hit-note", "cumulative over the window · 50% = a coin");
    const mae = CC.plot("chart-mae", [
      { type: "scatter", mode: "lines", name: "model", x: x, y: model,
        line: { color: c.pred, width: 1.5 } },
      { type: "scatter", mode: "lines", name: "persistence", x: x, y: base,
        line: { color: c.base, width: 1.2, dash: "dot" } },
    ], { xaxis: CC.localAxis(), yaxis: { tickformat: ",.1f", rangemode: "tozero" } });
    const rate = CC.plot("chart-hit", [
      { type: "scatter", mode: "lines", x: x.concat(x.slice().reverse()),
        y: hi.concat(lo.slice().reverse()), fill: "toself", fillcolor: c.shade,
        line: { width: 0 }, name: "95% CI", hoverinfo: "skip" },
      { type: "scatter", mode: "lines", name: "hit rate", x: x, y: hit,
        line: { color: c.pred, width: 1.5 } },
    ], { xaxis: CC.localAxis(), yaxis: { range: [0, 1], tickformat: ".0%" },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0.5, y1: 0.5,
        line: { color: c.muted, width: 1, dash: "dash" } }] });
    return [mae, rate];
  }

  function drawReliability(r) {
    const c = CC.colors();
    const bins = Array.from({ length: 10 }, () => ({ n: 0, p: 0, up: 0 }));
    r.forEach((o) => {
      if (o.prob == null || o.real == null || o.last == null) return;
      const b = bins[Math.min(9, Math.floor(o.prob * 10))];
      b.n += 1; b.p += o.prob; b.up += o.real > o.last ? 1 : 0;
    });
    const used = bins.filter((b) => b.n);
    const total = used.reduce((s, b) => s + b.n, 0);
    CC.text("rel-note", total + " scored forecasts in 10 bins of P(up)");
    return CC.plot("chart-reliability", [
      { type: "scatter", mode: "lines", name: "perfectly calibrated", x: [0, 1], y: [0, 1],
        line: { color: c.muted, dash: "dash", width: 1 }, hoverinfo: "skip" },
      { type: "scatter", mode: "markers", name: "observed", x: used.map((b) => b.p / b.n),
        y: used.map((b) => b.up / b.n), text: used.map((b) => "n=" + b.n),
        marker: { color: c.pred, size: used.map((b) => 6 + 18 * Math.sqrt(b.n / total)) } },
    ], { hovermode: "closest", xaxis: { type: "linear", range: [0, 1], tickformat: ".0%",
      title: { text: "predicted P(up)", font: { size: 11 } } },
    yaxis: { range: [0, 1], tickformat: ".0%",
      title: { text: "observed up share", font: { size: 11 } } } });
  }

  function table(r) {
    const body = document.querySelector("#latest tbody");
    const latest = r.slice(-30).reverse();
    body.replaceChildren(...latest.map((o) => {
      const called = o.prob == null ? "–" : o.prob > 0.5 ? "up" : "down";
      const hit = o.real == null ? "" : ((o.prob > 0.5) === (o.real > o.last) ? " ✓" : " ✗");
      return CC.h("tr", {}, [
        CC.h("td", { text: CC.shortTime(o.t) }),
        CC.h("td", { cls: "num", text: CC.price(o.pred) }),
        CC.h("td", { cls: "num" }, [CC.price(o.lo) + " –", CC.h("br"), CC.price(o.hi)]),
        CC.h("td", { cls: "num", text: o.real == null ? "pending" : CC.price(o.real) }),
        CC.h("td", { cls: "num", text: CC.signed(o.err, 2) }),
        CC.h("td", { cls: "num", text: CC.signed(o.perr, 2) }),
        CC.h("td", { cls: "num", text: CC.pct(o.prob, 1) }),
        CC.h("td", { text: called + hit }),
      ]);
    }));
  }

  const CHARTS = ["chart-ledger", "chart-mae", "chart-hit", "chart-reliability"];
  async function load() {
    const mine = ++token;
    const answer = await CC.get("/api/ledger?days=" + days);
    if (mine !== token) return null;
    if (!answer.ok) {
      CHARTS.forEach((id) => CC.empty(id, "The ledger could not be read",
        answer.detail || "HTTP " + answer.status));
      return CC.ready([]);
    }
    const data = answer.data;
    if (!data.forecasts) {
      const status = CC.status();
      const why = status && !status.last_candle_time ? await CC.whyNoData() : {
        title: "No forecasts recorded yet",
        text: "The champion records one forecast per candle, before the candle exists. The " +
          "first appears once a model is trained; scores follow when its candle closes." };
      CC.banner(why.title + ": " + why.text, why.exchange ? "bad" : "warn");
      CHARTS.forEach((id) => CC.empty(id, why.title, why.text));
      document.querySelector("#latest tbody").replaceChildren();
      return CC.ready([]);
    }
    CC.banner(data.metrics.rows ? "" : "No forecast in this window has been scored yet: each " +
      "is scored when its candle closes.");
    kpis(data.metrics);
    coverage(data.metrics);
    const r = rows(data.points);
    CC.text("ledger-note", data.forecasts + " forecasts, " + CC.time(data.start) + " – " +
      CC.time(data.end));
    table(r);
    return CC.ready([drawLedger(r), ...drawRolling(r), drawReliability(r)]);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const fromHash = parseInt((location.hash || "").slice(1), 10);
    if (RANGES.includes(fromHash)) days = fromHash;
    const mark = () => document.querySelectorAll("#range button").forEach((b) => {
      b.setAttribute("aria-pressed", String(Number(b.dataset.days) === days));
    });
    mark();
    document.querySelectorAll("#range button").forEach((b) => b.addEventListener("click", () => {
      days = Number(b.dataset.days);
      history.replaceState(null, "", "#" + days + "d");
      mark();
      load();
    }));
    CC.onUpdate(() => load());
  });
})();
