// Charts: /api/series (compact columns, downsampled server-side) and /api/metrics.
// Point i is candle t with the forecast made at t for t+1 and that forecast's error.
"use strict";
(function () {
  const CC = window.CC;
  const MAX_POINTS = 1500;
  const RANGES = [1, 7, 30, 90];
  let days = 7;
  let token = 0;


  // Per-row realized next close and the derived errors; exact even when downsampled, because a
  // bucket keeps its last row's close, forecast and error (realized = forecast − signed error).
  function derive(s) {
    const n = s.time.length;
    const out = { xPred: new Array(n), realNext: new Array(n), errPct: new Array(n),
      persistPct: new Array(n), persistAbs: [], modelAbs: [], hits: 0, calls: 0,
      wdaHit: 0, wdaAll: 0, ups: 0 };
    for (let i = 0; i < n; i++) {
      out.xPred[i] = CC.lx(s.time[i] + s.bucket_ms);
      const e = s.err_close_signed[i];
      const f = s.close_next[i];
      if (e == null || f == null) {
        out.realNext[i] = null; out.errPct[i] = null; out.persistPct[i] = null;
        continue;
      }
      const real = f - e;
      out.realNext[i] = real;
      out.errPct[i] = (100 * e) / real;
      out.persistPct[i] = (100 * (s.close[i] - real)) / real;
      out.modelAbs.push(Math.abs(e));
      out.persistAbs.push(Math.abs(s.close[i] - real));
      const p = s.prob_up[i];
      if (p != null) {
        const up = real > s.close[i];
        const move = Math.abs(Math.log(real / s.close[i]));
        out.calls += 1;
        out.ups += up ? 1 : 0;
        out.wdaAll += move;
        if ((p > 0.5) === up) { out.hits += 1; out.wdaHit += move; }
      }
    }
    return out;
  }
  const mean = (a) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);

  // The validation period is shaded only where it splits the window; when it covers all of
  // it (or none), a full-window block would highlight nothing, so the note says it in words.
  function shading(metrics, s) {
    if (!metrics) {
      CC.text("shade-note", "");
      return [];
    }
    const start = Date.parse(metrics.validation_start);
    const first = s.time[0];
    const last = s.time[s.time.length - 1] + s.bucket_ms;
    const since = CC.time(start);
    if (start <= first) {
      CC.text("candles-note", "all out of sample");
      CC.text("shade-note", "All of this window is out of sample: the model's validation " +
        "period began " + since + ", before the first candle shown, so it never trained on " +
        "any of them. No shading is drawn, as it would cover the whole chart.");
      return [];
    }
    if (start >= last) {
      CC.text("candles-note", "all in the training data");
      CC.text("shade-note", "Every candle shown was in the model's training data (its " +
        "validation period begins " + since + ", after this window): forecasts here are " +
        "in-sample and look better than live ones. Choose a shorter window to see " +
        "out-of-sample forecasts.");
      return [];
    }
    CC.text("candles-note", "shaded: out of sample, from " + since);
    CC.text("shade-note", "The shaded part, from " + since + " on, is the model's " +
      "validation period and what followed it: the model never trained on those candles. " +
      "Left of it the forecasts are in-sample and look better than live ones.");
    const c = CC.colors();
    return [{ type: "rect", xref: "x", yref: "paper", x0: CC.lx(start), x1: CC.lx(last),
      y0: 0, y1: 1, fillcolor: c.shade, opacity: 0.55, line: { width: 0 }, layer: "below" }];
  }

  // Whether every forecast close shown equals the close it was made from (persistence): the
  // close model is then gated to persistence, and its line hides the persistence line.
  function coincides(s) {
    let n = 0;
    for (let i = 0; i < s.time.length; i++) {
      const f = s.close_next[i];
      if (f == null) continue;
      if (Math.abs(f - s.close[i]) > 1e-9 * Math.abs(s.close[i])) return false;
      n += 1;
    }
    return n > 0;
  }

  // The whiskers at t+3 and t+12 of the forecasts made from the newest candle, in words too.
  function horizonTraces(forecast) {
    const traces = CC.horizons.traces(forecast);
    const shown = ((forecast && forecast.horizons) || []).filter((h) => h.current);
    CC.text("horizon-note", !forecast ? "" : shown.length ? "Diamonds right of the last " +
      "candle: the median close " + shown.map((h) => h.horizon).join(" and ") + " candles " +
      "ahead, with its 50% (thick) and 90% (thin) intervals; ranges and scores are on the " +
      "Overview." : "No forecast 3 or 12 candles ahead from the newest candle yet.");
    return traces;
  }

  function draw(s, metrics, forecast) {
    const c = CC.colors();
    const x = s.time.map(CC.lx);
    const d = derive(s);
    const shapes = shading(metrics, s);
    const ax = { xaxis: CC.localAxis(), shapes: shapes };
    const down = s.bucket_ms > CC.STEP;
    const per = down ? " (1 point per " + Math.round(s.bucket_ms / 60000) + " min)" : "";
    CC.text("window-note", s.count + " points from " + CC.time(s.time[0]) + " to " +
      CC.time(s.time[s.time.length - 1]) + per + ". Each forecast is placed at the candle " +
      "it targets.");
    const candles = CC.plot("chart-candles", [
      { type: "candlestick", name: "real", x: x, open: s.open, high: s.high, low: s.low,
        close: s.close, increasing: { line: { color: c.up, width: 1 } },
        decreasing: { line: { color: c.down, width: 1 } } },
      { type: "candlestick", name: "predicted", x: d.xPred, open: s.open_next,
        high: s.high_next, low: s.low_next, close: s.close_next, opacity: 0.75,
        increasing: { line: { color: c.pred, width: 1 }, fillcolor: "rgba(0,0,0,0)" },
        decreasing: { line: { color: c.pred, width: 1 }, fillcolor: "rgba(0,0,0,0)" } },
      ...horizonTraces(forecast),
    ], Object.assign({ yaxis: { tickformat: ",.0f" } }, ax));

    const maeModel = mean(d.modelAbs);
    const maePersist = mean(d.persistAbs);
    const skill = 1 - maeModel / maePersist;
    CC.text("close-stats", "MAE " + CC.price(maeModel) + " vs persistence " +
      CC.price(maePersist) + " · skill " + CC.signed(skill, 3));
    const same = coincides(s);
    const closeFit = metrics && metrics.validation && metrics.validation.close;
    const gated = same && closeFit && closeFit.weight === 0;
    CC.text("close-note", (same ? (gated ? "The close model is gated to persistence: it " +
      "showed no skill over it on validation, so it forecasts the last close and the " +
      "predicted and persistence lines coincide. " : "Every close forecast shown equals " +
      "the last close (persistence): the predicted and persistence lines coincide. ") : "") +
      "Over the " + d.modelAbs.length + " scored forecasts shown" +
      (down ? " (the last candle of each point)" : "") + ": " +
      CC.skillNote(skill, "persistence (next close = last close)") + ".");
    const closeTraces = [
      { type: "scatter", mode: "lines", name: "real close", x: x, y: s.close,
        line: { color: c.text, width: 1.4 } },
      { type: "scatter", mode: "lines", name: same ? "predicted = persistence" :
        "predicted close", x: d.xPred, y: s.close_next, line: { color: c.pred, width: 1.2 } },
    ];
    if (!same) {
      closeTraces.push({ type: "scatter", mode: "lines", name: "persistence", x: d.xPred,
        y: s.close, line: { color: c.base, width: 1, dash: "dot" }, visible: "legendonly" });
    }
    const close = CC.plot("chart-close", closeTraces,
      Object.assign({ yaxis: { tickformat: ",.0f" } }, ax));

    if (!d.modelAbs.length) {
      // Nothing to score yet: say so instead of drawing empty axes.
      const text = metrics ? "No forecast in this window has met its candle yet." :
        "There is no model yet, so there are no forecasts to score. The first model is " +
        "trained right after the backfill.";
      ["chart-error", "chart-direction"].forEach((id) => CC.empty(id, "No scored forecasts",
        text));
      ["close-stats", "error-stats", "direction-stats"].forEach((id) => CC.text(id, ""));
      CC.text("close-note", text);
      CC.text("direction-note", "");
      return CC.ready([candles, close, drawRange(s, d, x, ax, down)]);
    }
    const absPct = d.errPct.filter((v) => v != null).map(Math.abs);
    const absPersist = d.persistPct.filter((v) => v != null).map(Math.abs);
    CC.text("error-stats", "mean |error| " + CC.num(mean(absPct), 3) + "% vs persistence " +
      CC.num(mean(absPersist), 3) + "%");
    const error = CC.plot("chart-error", [
      { type: "scatter", mode: "lines", name: "model error %", x: d.xPred, y: d.errPct,
        line: { color: c.pred, width: 1 } },
      { type: "scatter", mode: "lines", name: "persistence error %", x: d.xPred,
        y: d.persistPct, line: { color: c.base, width: 1, dash: "dot" }, visible: "legendonly" },
    ], Object.assign({ yaxis: { ticksuffix: "%", zeroline: true } }, ax));

    const range = drawRange(s, d, x, ax, down);

    const acc = d.calls ? d.hits / d.calls : NaN;
    const ci = CC.wilson(d.hits, d.calls);
    const upShare = d.calls ? d.ups / d.calls : NaN;
    const baseAcc = Math.max(upShare, 1 - upShare);
    const wda = d.wdaAll ? d.wdaHit / d.wdaAll : NaN;
    CC.text("direction-stats", "hit rate " + CC.pct(acc, 1) + " [" + CC.pct(ci[0], 1) + ", " +
      CC.pct(ci[1], 1) + "] · WDA " + CC.num(wda, 3) + " · always-majority " +
      CC.pct(baseAcc, 1));
    CC.text("direction-note", "Over " + d.calls + " scored calls. A hit rate inside its 95% " +
      "interval around 50% means no directional skill; WDA weighs each call by the size of " +
      "the move (0.5 = no skill). The baseline always calls the side that was more frequent " +
      "here.");
    const realizedUp = s.close.map((v, i) => (d.realNext[i] == null ? null :
      d.realNext[i] > v ? 1 : 0));
    const direction = CC.plot("chart-direction", [
      { type: "scatter", mode: "lines", name: "P(up) predicted", x: d.xPred, y: s.prob_up,
        line: { color: c.pred, width: 1.2 } },
      { type: "scatter", mode: "markers", name: "realized (1 = up)", x: d.xPred, y: realizedUp,
        marker: { color: c.muted, size: 3, opacity: 0.5 } },
    ], Object.assign({ yaxis: { range: [-0.05, 1.05], tickformat: ".0%" } }, ax));
    return CC.ready([candles, close, error, range, direction]);
  }

  function drawRange(s, d, x, ax, down) {
    const c = CC.colors();
    const n = s.time.length;
    let real = null;
    if (s.err_amp_signed) {
      real = s.amp_next.map((v, i) => (v == null || s.err_amp_signed[i] == null ? null :
        v - s.err_amp_signed[i]));
    } else if (!down) {
      // Full resolution: the realized range of t+1 is the next row when it is exactly t+1.
      real = s.time.map((t, i) => (i + 1 < n && s.time[i + 1] === t + CC.STEP ?
        s.high[i + 1] - s.low[i + 1] : null));
    }
    const traces = [{ type: "scatter", mode: "lines", name: "predicted range", x: d.xPred,
      y: s.amp_next, line: { color: c.pred, width: 1.2 } }];
    if (real) {
      traces.unshift({ type: "scatter", mode: "lines", name: "real range", x: d.xPred, y: real,
        line: { color: c.text, width: 1 } });
    } else {
      traces.push({ type: "scatter", mode: "lines", name: "|error|", x: d.xPred,
        y: s.err_amp_abs, line: { color: c.down, width: 1 } });
    }
    const errs = s.err_amp_abs.filter((v) => v != null);
    CC.text("range-stats", errs.length ? "MAE " + CC.price(mean(errs)) + " over " +
      errs.length + (real ? "" : " · realized range per point needs a signed error") :
      "no scored range forecasts yet");
    return CC.plot("chart-range", traces, Object.assign({ yaxis: { tickformat: ",.0f" } }, ax));
  }

  const CHARTS = ["chart-candles", "chart-close", "chart-error", "chart-range",
    "chart-direction"];
  async function load() {
    const mine = ++token;
    const status = CC.status();
    if (status && !status.last_candle_time) {
      // Asking /api/series now would only get a 404; say why there is nothing instead.
      const why = await CC.whyNoData();
      CC.banner(why.title + ": " + why.text, why.exchange ? "bad" : "warn");
      CHARTS.forEach((id) => CC.empty(id, why.title, why.text));
      return CC.ready([]);
    }
    const [series, models] = await Promise.all([
      CC.get("/api/series?format=columns&fallback_days=" + days + "&max_points=" + MAX_POINTS),
      CC.get("/api/models?limit=1"),
    ]);
    if (mine !== token) return null;
    if (!series.ok || !series.data.time || !series.data.time.length) {
      const text = series.ok ? "The series is empty for this window." : "/api/series " +
        "answered HTTP " + series.status + (series.detail ? " (" + series.detail + ")" : "") + ".";
      CHARTS.forEach((id) => CC.empty(id, "No candles in this window", text));
      return CC.ready([]);
    }
    let metrics = null;
    let forecast = null;
    if (models.ok && models.data.champion_id != null) {
      const [m, f] = await Promise.all([CC.get("/api/metrics"), CC.get("/api/forecast")]);
      metrics = m.ok ? m.data : null;
      forecast = f.ok ? f.data : null;
      CC.banner("");
    } else {
      CC.banner("No model yet: the charts show real candles only. The first model is trained " +
        "right after the backfill, and its forecasts appear here by themselves.");
    }
    if (mine !== token) return null;
    if (!metrics) CC.text("candles-note", "no model yet");
    return draw(series.data, metrics, forecast);
  }

  function choose(next) {
    days = next;
    document.querySelectorAll("#range button").forEach((b) => {
      b.setAttribute("aria-pressed", String(Number(b.dataset.days) === days));
    });
    if (location.hash !== "#" + days + "d") history.replaceState(null, "", "#" + days + "d");
    load();
  }
  document.addEventListener("DOMContentLoaded", () => {
    days = CC.hashDays(RANGES, days);
    document.querySelectorAll("#range button").forEach((b) => {
      b.setAttribute("aria-pressed", String(Number(b.dataset.days) === days));
      b.addEventListener("click", () => choose(Number(b.dataset.days)));
    });
    CC.onUpdate(() => load());
  });
})();
