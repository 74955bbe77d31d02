// Jobs: recent runs (/api/jobs) with structured details, failures highlighted, next runs.
"use strict";
(function () {
  const CC = window.CC;
  const SUMMARY_KEYS = ["error", "inserted", "fetched", "repaired", "calls", "model_id",
    "promoted", "decision", "reason", "samples", "mae", "rows"];

  function summary(d) {
    const parts = [];
    SUMMARY_KEYS.forEach((k) => {
      if (d[k] == null || parts.length >= 4) return;
      let v = d[k];
      if (typeof v === "number" && !Number.isInteger(v)) v = v.toFixed(3);
      parts.push(k + " " + v);
    });
    return parts.join(" · ") || "–";
  }

  function nextRuns(data) {
    const list = CC.$("next-runs");
    const state = !data.scheduler_enabled ? ["not in this process", ""] :
      data.scheduler_running ? ["running", "good"] : ["starting", "warn"];
    CC.text("sched-state", state[0], "badge " + state[1]);
    const runs = data.next_runs || [];
    list.replaceChildren(...(runs.length ? runs.map((r) => CC.h("li", {}, [
      CC.h("span", { text: r.name }),
      CC.h("span", { cls: "num",
        text: CC.clock(r.next_run) + " (" + CC.agoHost(r.next_run) + ")" }),
    ])) : [CC.h("li", { cls: "sub", text: data.scheduler_enabled ? "the scheduler starts " +
      "after the first backfill and training" : "this process runs no scheduler (a worker " +
      "does)" })]));
  }

  function runs(data) {
    const rows = data.runs || [];
    const failed = rows.filter((r) => r.status === "failed");
    const durations = rows.map((r) => r.duration_seconds).filter((v) => v != null)
      .sort((a, b) => a - b);
    CC.text("j-count", String(rows.length));
    CC.text("j-failed", String(failed.length), "kpi-value num " + (failed.length ? "down" : ""));
    CC.text("j-median", durations.length ? CC.duration(durations[durations.length >> 1]) : "–");
    CC.text("j-lastfail", failed.length ? CC.agoHost(failed[0].started_at) : "none");
    const body = document.querySelector("#runs tbody");
    if (!rows.length) {
      body.replaceChildren(CC.h("tr", {}, [CC.h("td", { colspan: "7", cls: "sub",
        text: "No job has run yet. `candlecast serve` starts with a backfill." })]));
      return;
    }
    body.replaceChildren(...rows.map((r) => {
      const kind = r.status === "failed" ? "bad" : r.status === "ok" ? "good" :
        r.status === "running" ? "accent" : "";
      const pre = CC.h("pre", { cls: "details", text: JSON.stringify(r.details, null, 2) });
      return CC.h("tr", { cls: r.status === "failed" ? "failed" : "" }, [
        CC.h("td", { cls: "num", text: String(r.id) }),
        CC.h("td", { text: r.name }),
        CC.h("td", {}, [CC.h("span", { cls: "badge " + kind, text: r.status })]),
        CC.h("td", { text: CC.time(r.started_at) }),
        CC.h("td", { cls: "num", text: r.status === "running" ? "running" :
          CC.duration(r.duration_seconds) }),
        CC.h("td", { text: summary(r.details || {}) }),
        CC.h("td", {}, [CC.h("details", {}, [CC.h("summary", { text: "show" }), pre])]),
      ]);
    }));
  }

  async function load() {
    const name = CC.$("job-filter").value;
    const answer = await CC.get("/api/jobs?limit=100" + (name ? "&name=" + name : ""));
    if (!answer.ok) {
      CC.banner("The job list could not be read: " + (answer.detail || "HTTP " + answer.status),
        "bad");
      return CC.ready([]);
    }
    const status = CC.status();
    const why = status && !status.last_candle_time ? await CC.whyNoData() : null;
    CC.banner(why ? why.title + ": " + why.text : "", why && why.exchange ? "bad" : "warn");
    nextRuns(answer.data);
    runs(answer.data);
    return CC.ready([]);
  }
  document.addEventListener("DOMContentLoaded", () => {
    CC.$("job-filter").addEventListener("change", load);
    CC.onUpdate(() => load());
  });
})();
