// Overview: last closed candle, the next-candle forecast and those 3 and 12 candles ahead,
// prospective skill, service status and a small live chart. Everything is re-read when
// /api/version changes.
"use strict";
(function () {
  const CC = window.CC;
  const HOURS = 6;
  let lastClose = null;
  // The age keeps counting between updates.
  setInterval(() => { if (lastClose) CC.text("last-age", "closed " + CC.ago(lastClose)); }, 10e3);

  function showLast(cols) {
    const n = cols.time.length;
    const i = n - 1;
    const t = cols.time[i];
    CC.text("last-close", CC.price(cols.close[i]));
    CC.text("last-time", CC.time(t));
    CC.$("last-time").dataset.time = String(t);
    CC.text("last-age", "closed " + CC.ago(t + CC.STEP));
    lastClose = t + CC.STEP;
    CC.text("last-open", CC.price(cols.open[i]));
    CC.text("last-high", CC.price(cols.high[i]));
    CC.text("last-low", CC.price(cols.low[i]));
    const change = cols.close[i] - cols.open[i];
    CC.text("last-change", CC.signed(change, 2), "num " + (change > 0 ? "up" : "down"));
  }

  function showForecast(f) {
    const fields = { open: "fc-open", high: "fc-high", low: "fc-low", range: "fc-range" };
    Object.entries(fields).forEach(([key, id]) => {
      CC.text(id, CC.price(f[key]));
      CC.$(id).dataset.value = String(f[key]);
    });
    CC.text("fc-close", CC.price(f.close));
    CC.$("fc-close").dataset.value = String(f.close);
    const level = Math.round(100 * f.interval_level);
    CC.text("fc-interval", level + "% interval " + CC.price(f.close_lo) + " – " +
      CC.price(f.close_hi));
    CC.$("fc-interval").dataset.lo = String(f.close_lo);
    CC.$("fc-interval").dataset.hi = String(f.close_hi);
    CC.text("fc-prob", CC.pct(f.prob_up, 1));
    CC.$("fc-prob").dataset.value = String(f.prob_up);
    const clim = f.baselines && f.baselines.base_prob_up;
    CC.text("fc-prob-note", clim != null ? "climatology " + CC.pct(clim, 1) : "");
    CC.text("fc-target", CC.clock(f.target_time));
    CC.$("fc-target").dataset.value = f.target_time;
    CC.text("fc-made", "candle opening " + CC.time(f.target_time));
    CC.text("fc-model", "model #" + f.model_id);
    CC.$("fc-model").dataset.value = String(f.model_id);
    const move = f.close - f.last_close;
    CC.text("fc-note", "Made at " + CC.time(f.made_at) + " from the close " +
      CC.price(f.last_close) + ". Persistence (the baseline) says the next close is " +
      CC.price(f.last_close) + "; the model says " + (Math.abs(move) < 0.005 ? "the same" :
      CC.signed(move, 2) + " from it") + ". " +
      (f.current ? "" : "This forecast is not for the candle after the newest one yet."));
  }

  function showSkill(prefix, report) {
    const m = report && report.metrics;
    const close = m && m.targets && m.targets.close;
    if (!close || !m.rows) {
      CC.text(prefix, "–");
      CC.text(prefix + "-sub", "no scored forecasts in this window yet");
      return;
    }
    CC.text(prefix, CC.signed(close.skill, 3), "kpi-value num " +
      (close.skill > 0 ? "up" : close.skill < 0 ? "down" : ""));
    CC.text(prefix + "-sub", "MAE " + CC.price(close.mae) + " vs persistence " +
      CC.price(close.baseline_mae) + " · " + CC.skillNote(close.skill, "persistence") +
      " · n=" + m.rows);
  }

  function showWeek(report) {
    showSkill("skill-7", report);
    const m = report && report.metrics;
    const d = m && m.direction;
    if (d && d.n) {
      const ci = d.accuracy_ci95 || [];
      CC.text("hit-7", CC.pct(d.accuracy, 1));
      CC.text("hit-7-sub", "95% CI " + CC.pct(ci[0], 1) + "–" + CC.pct(ci[1], 1) +
        " · a coin is 50% · Brier " + CC.num(d.brier, 4) + " vs climatology " +
        CC.num(d.brier_baseline, 4));
    } else {
      CC.text("hit-7", "–");
      CC.text("hit-7-sub", "no scored forecasts yet");
    }
    const r = m && m.targets && m.targets.range;
    if (r && m.rows) {
      CC.text("range-7", CC.signed(r.skill, 3), "kpi-value num " + (r.skill > 0 ? "up" : "down"));
      CC.text("range-7-sub", "MAE " + CC.price(r.mae) + " vs last range " +
        CC.price(r.baseline_mae) + " · " + CC.skillNote(r.skill, "the naive"));
    } else {
      CC.text("range-7", "–");
      CC.text("range-7-sub", "no scored forecasts yet");
    }
  }

  function showStatus(status, jobs) {
    const stream = !status.stream_enabled ? ["off here", ""] :
      status.stream_connected ? ["connected", "good"] : ["disconnected", "bad"];
    CC.text("st-stream", stream[0], "badge " + stream[1]);
    const sched = !status.scheduler_enabled ? ["not in this process", ""] :
      status.scheduler_running ? ["running", "good"] : ["starting", "warn"];
    CC.text("st-scheduler", sched[0], "badge " + sched[1]);
    CC.text("st-version", String(status.version));
    const next = jobs && jobs.next_runs && jobs.next_runs[0];
    CC.text("st-next", next ? next.name + " at " + CC.clock(next.next_run) : "none scheduled");
    const run = jobs && jobs.runs && jobs.runs[0];
    const job = run ? run.name + " · " + run.status + " · " + CC.agoHost(run.started_at) : "–";
    CC.text("st-job", job, run && run.status === "failed" ? "down" : "");
  }

  function drawChart(cols, forecast) {
    const c = CC.colors();
    const x = cols.time.map(CC.lx);
    const traces = [{
      type: "candlestick", name: "real", x: x, open: cols.open, high: cols.high,
      low: cols.low, close: cols.close, increasing: { line: { color: c.up } },
      decreasing: { line: { color: c.down } }, hoverinfo: "x+y",
    }];
    if (forecast && forecast.current) {
      const fx = [CC.lx(forecast.target_time)];
      traces.push({
        type: "candlestick", name: "forecast", x: fx, open: [forecast.open],
        high: [forecast.high], low: [forecast.low], close: [forecast.close],
        increasing: { line: { color: c.pred, width: 2 }, fillcolor: "rgba(0,0,0,0)" },
        decreasing: { line: { color: c.pred, width: 2 }, fillcolor: "rgba(0,0,0,0)" },
      });
      traces.push({
        type: "scatter", mode: "markers", name: "close interval", x: fx, y: [forecast.close],
        marker: { color: c.pred, size: 6 }, error_y: { type: "data", symmetric: false,
          array: [forecast.close_hi - forecast.close], arrayminus: [forecast.close -
          forecast.close_lo], color: c.pred, thickness: 1.5, width: 6 },
      });
    }
    traces.push(...CC.horizons.traces(forecast));
    return CC.plot("chart-live", traces, { showlegend: false, hovermode: "closest",
      xaxis: CC.localAxis(), yaxis: { tickformat: ",.0f" } });
  }

  async function refresh(status) {
    showStatus(status, null);
    const jobsP = CC.get("/api/jobs?limit=5");
    if (!status.last_candle_time) {
      const why = await CC.whyNoData();
      CC.banner(why.title + ": " + why.text, why.exchange ? "bad" : "warn");
      CC.empty("last-block", why.title, why.text);
      CC.empty("fc-block", "No forecast yet", "A forecast needs candles and a model; both " +
        "arrive after the first backfill and training.");
      CC.empty("skill-block", "No forecasts scored yet", "Skill appears once recorded " +
        "forecasts have met their candles.");
      CC.empty("chart-live", why.title, why.text);
      CC.horizons.table("hz-block", null, null);
      const jobs = await jobsP;
      showStatus(status, jobs.ok ? jobs.data : null);
      return CC.ready([]);
    }
    CC.banner("");
    const since = new Date(Date.parse(status.last_candle_time) - HOURS * 3600e3).toISOString();
    const [series, models, jobs, day, week, ahead] = await Promise.all([
      CC.get("/api/series?format=columns&start=" + encodeURIComponent(since)),
      CC.get("/api/models?limit=1"),
      jobsP,
      CC.get("/api/ledger?days=1&points=false"),
      CC.get("/api/ledger?days=7&points=false"),
      CC.get("/api/horizons?days=7"),
    ]);
    showStatus(status, jobs.ok ? jobs.data : null);
    let forecast = null;
    if (models.ok && models.data.champion_id != null) {
      const answer = await CC.get("/api/forecast");
      if (answer.ok) {
        forecast = answer.data;
        restore("fc-block");
        showForecast(forecast);
      } else {
        CC.empty("fc-block", "No forecast yet", answer.detail || "The forecast could not be read.");
      }
    } else if (models.ok) {
      CC.empty("fc-block", "No model yet", "The first model is trained right after the " +
        "backfill (about a minute). Until then there is nothing honest to forecast with.");
    } else {
      CC.empty("fc-block", "Models unavailable", models.detail || "HTTP " + models.status);
    }
    restore("hz-block");
    CC.horizons.table("hz-block", forecast, ahead.ok ? ahead.data : null);
    if (day.ok && week.ok) {
      restore("skill-block");
      showSkill("skill-1", day.data);
      showWeek(week.data);
    }
    if (series.ok && series.data.time.length) {
      restore("last-block");
      showLast(series.data);
      return CC.ready([drawChart(series.data, forecast)]);
    }
    if (series.ok) CC.empty("chart-live", "No candles to draw", "The last 6 hours are empty.");
    else CC.empty("chart-live", "The chart data could not be read", "/api/series answered " +
      "HTTP " + series.status + (series.detail ? " (" + series.detail + ")" : "") + ".");
    return CC.ready([]);
  }

  // Empty states replace a block's content; the original markup is kept to put back.
  const original = {};
  function restore(id) {
    const el = CC.$(id);
    if (el && el.dataset.state === "empty" && original[id]) {
      el.replaceChildren(...original[id]);
      el.dataset.state = "";
    }
  }
  document.addEventListener("DOMContentLoaded", () => {
    ["last-block", "fc-block", "skill-block", "hz-block"].forEach((id) => {
      const el = CC.$(id);
      if (el) original[id] = Array.from(el.childNodes);
    });
    CC.onUpdate((status) => refresh(status));
  });
})();
