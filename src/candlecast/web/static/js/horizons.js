// Forecasts 3 and 12 candles ahead (/api/forecast's `horizons`, scored by /api/horizons): a
// table for the Overview and whiskers for the price charts, each figure beside its baseline.
"use strict";
(function () {
  const CC = window.CC;
  const H = {};
  const list = (forecast) => (forecast && forecast.horizons) || [];
  function span(ms) {
    const min = Math.round(ms / 60e3);
    if (min < 120) return min + " min";
    return min < 2880 ? Math.round(min / 60) + " h" : Math.round(min / 1440) + " d";
  }
  const ahead = (h) => "t+" + h.horizon + " · " + span(h.horizon * CC.STEP);

  // One row per horizon: when it ends, the close's median and 90% interval beside the last
  // close (persistence), the range beside its baselines, and the last `days` of scores.
  H.table = function (id, forecast, report) {
    const el = CC.$(id);
    if (!el) return false;
    if (!list(forecast).length) {
      CC.empty(id, "No forecast 3 and 12 candles ahead yet", "They are recorded with the " +
        "next-candle forecast by models that have horizon models, from the next closed candle.");
      return false;
    }
    const scores = {};
    ((report && report.horizons) || []).forEach((h) => { scores[h.horizon] = h; });
    const body = el.querySelector("tbody");
    body.replaceChildren(...list(forecast).map((h) => {
      const s = scores[h.horizon];
      const range = s && s.metrics && s.metrics.range;
      const close = s && s.metrics && s.metrics.close;
      const har = range && range.baselines.har;
      const b = h.baselines;
      return CC.h("tr", { "data-horizon": String(h.horizon) }, [
        CC.h("td", { text: ahead(h) }),
        CC.h("td", { text: CC.clock(h.end_time) + (h.current ? "" : " (not current)") }),
        CC.h("td", { cls: "num", "data-testid": "hz-close-" + h.horizon,
          text: CC.price(h.close) }),
        CC.h("td", { cls: "num" }, [CC.price(h.close_lo) + " –", CC.h("br"),
          CC.price(h.close_hi)]),
        CC.h("td", { cls: "num", text: CC.price(h.last_close) }),
        CC.h("td", { cls: "num", "data-testid": "hz-range-" + h.horizon,
          text: CC.price(h.range) }),
        CC.h("td", { cls: "num", text: CC.price(b.persistence_range) + " / " +
          CC.price(b.random_walk_range) + " / " + CC.price(b.har_range) }),
        CC.h("td", { cls: "num", text: har && har.skill != null ? CC.signed(har.skill, 3) +
          " (n=" + har.rows + ")" : "not scored yet" }),
        CC.h("td", { cls: "num", text: close ? CC.pct(close.coverage["90"], 1) : "–" }),
      ]);
    }));
    CC.fitTables();
    return true;
  };

  // Whiskers at t+h on a price chart: the median close with its 90% (thin) and 50% (thick)
  // intervals, for the forecasts made from the newest candle.
  H.traces = function (forecast) {
    const c = CC.colors();
    const current = list(forecast).filter((h) => h.current && h.close != null);
    if (!current.length) return [];
    const x = current.map((h) => CC.lx(h.end_time));
    const y = current.map((h) => h.close);
    const q = (key) => current.map((h) => h.close_quantiles[key]);
    const text = current.map((h) => ahead(h) + ": median " + CC.price(h.close) + ", 90% " +
      CC.price(h.close_lo) + " – " + CC.price(h.close_hi) + ", range " + CC.price(h.range));
    const bar = (hi, lo, width, thickness) => ({ type: "data", symmetric: false,
      array: hi.map((v, i) => v - y[i]), arrayminus: lo.map((v, i) => y[i] - v),
      color: c.pred, thickness: thickness, width: width });
    return [
      { type: "scatter", mode: "markers", name: "t+h 90% interval", x: x, y: y, text: text,
        hoverinfo: "text", marker: { color: c.pred, size: 7, symbol: "diamond" },
        error_y: bar(q("q950"), q("q050"), 8, 1.2) },
      { type: "scatter", mode: "markers", name: "t+h 50% interval", x: x, y: y,
        hoverinfo: "skip", marker: { color: c.pred, size: 1 },
        error_y: bar(q("q750"), q("q250"), 0, 5) },
    ];
  };

  CC.horizons = H;
})();
