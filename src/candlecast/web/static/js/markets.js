// Markets: one row per followed pair from /api/pairs, updated in place, sortable by column.
// Built for hundreds of pairs: rows are made once, then only the cells whose text changed are
// written; a sort moves the existing rows instead of rebuilding them.
"use strict";
(function () {
  const rows = new Map(); // "SYMBOL:INTERVAL" -> {tr, cells, entry, spark}
  const sort = { key: null, dir: 1 };
  const SVG = "http://www.w3.org/2000/svg";
  const SPARK_W = 96;
  const SPARK_H = 24;
  const REFRESH_MS = 15000; // at least this often, even when the default pair's version holds
  let etag = null;
  let timer = null;
  let loading = false;

  const keyOf = (e) => e.symbol + ":" + e.interval;
  const pct = (x) => (x == null || !isFinite(x) ? "–" : CC.signed(100 * x, 2) + "%");
  const skill = (x) => (x == null || !isFinite(x) ? "–" : CC.signed(100 * x, 1) + "%");
  const BADGES = { live: "good", degraded: "warn", backfilling: "accent", failed: "bad" };

  // Sort values: numbers or strings; missing values always sort last, whichever direction.
  const VALUES = {
    pair: (e) => keyOf(e),
    price: (e) => e.last_close,
    change: (e) => e.change_24h_pct,
    forecast: (e) => (e.forecast ? e.forecast.close : null),
    prob: (e) => (e.forecast ? e.forecast.prob_up : null),
    skill: (e) => (e.skill_7d ? e.skill_7d.close : null),
    range: (e) => (e.skill_7d ? e.skill_7d.range : null),
    status: (e) => e.status,
  };

  function set(el, text, cls) {
    if (el.textContent !== text) el.textContent = text;
    if (cls !== undefined && el.className !== cls) el.className = cls;
  }

  // At most one point per pixel of the sparkline: a 24 h window of 1m candles is 1,440
  // closes, which would cost 15 times the work for the same picture.
  function sparkPoints(closes) {
    let values = (closes || []).filter((v) => v != null && isFinite(v));
    if (values.length < 2) return "";
    if (values.length > SPARK_W) {
      const every = values.length / SPARK_W;
      const picked = [];
      for (let i = 0; i < SPARK_W; i += 1) picked.push(values[Math.floor(i * every)]);
      picked.push(values[values.length - 1]);
      values = picked;
    }
    let lo = Infinity;
    let hi = -Infinity;
    values.forEach((v) => { if (v < lo) lo = v; if (v > hi) hi = v; });
    const span = hi - lo || 1;
    const step = SPARK_W / (values.length - 1);
    return values.map((v, i) => (i * step).toFixed(1) + "," +
      (SPARK_H - 1 - ((v - lo) / span) * (SPARK_H - 2)).toFixed(1)).join(" ");
  }

  function makeRow(entry) {
    const key = keyOf(entry);
    const href = CC.pageUrl("/", entry.symbol, entry.interval);
    const link = CC.h("a", { href: href, text: entry.symbol + " · " + entry.interval });
    const cell = (cls, col) => CC.h("td", { cls: cls, "data-col": col });
    const cells = {
      pair: CC.h("td", { "data-col": "pair" }, [link]),
      price: cell("num", "price"),
      change: cell("num", "change"),
      spark: cell("spark", "spark"),
      forecast: cell("num", "forecast"),
      prob: cell("num", "prob"),
      skill: cell("num", "skill"),
      range: cell("num", "range"),
      status: cell("wrap", "status"),
    };
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + SPARK_W + " " + SPARK_H);
    svg.setAttribute("width", String(SPARK_W));
    svg.setAttribute("height", String(SPARK_H));
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
    cells.spark.append(svg);
    cells.forecastValue = CC.h("span", {});
    cells.forecastRange = CC.h("span", { cls: "aside" });
    // One box per cell, so a stacked (phone) row shows label left, content right.
    cells.forecast.append(CC.h("span", { cls: "cell" }, [cells.forecastValue,
      cells.forecastRange]));
    cells.statusBadge = CC.h("span", { cls: "badge" });
    cells.statusReason = CC.h("span", { cls: "aside" });
    cells.status.append(CC.h("span", { cls: "cell" }, [cells.statusBadge, cells.statusReason]));
    const tr = CC.h("tr", { "data-pair": key, "data-href": href, cls: "row-link" }, [
      cells.pair, cells.price, cells.change, cells.spark, cells.forecast, cells.prob,
      cells.skill, cells.range, cells.status]);
    return { tr: tr, cells: cells, entry: null, spark: "", svg: svg, line: line };
  }

  function fill(row, entry) {
    const c = row.cells;
    row.entry = entry;
    set(c.price, CC.price(entry.last_close));
    c.price.title = entry.last_candle_time ? "close of the candle opened " +
      CC.time(entry.last_candle_time) : "no candle yet";
    const change = entry.change_24h_pct;
    // change_24h_pct is a percentage already (1.5 means +1.5 %).
    set(c.change, change == null || !isFinite(change) ? "–" : CC.signed(change, 2) + "%",
      "num " + (change > 0 ? "up" : change < 0 ? "down" : ""));
    const spark = sparkPoints(entry.sparkline_24h);
    if (spark !== row.spark) {
      row.spark = spark;
      row.line.setAttribute("points", spark);
      const closes = entry.sparkline_24h || [];
      const rising = closes.length > 1 && closes[closes.length - 1] >= closes[0];
      row.svg.setAttribute("class", "sparkline " + (closes.length > 1 ? (rising ? "up" : "down")
        : ""));
      row.svg.setAttribute("aria-label", closes.length > 1 ? "last 24 h: " +
        CC.price(closes[0]) + " to " + CC.price(closes[closes.length - 1]) : "no candles");
    }
    const f = entry.forecast;
    set(c.forecastValue, f ? CC.price(f.close) : "–");
    set(c.forecastRange, f ? "[" + CC.price(f.close_lo) + ", " + CC.price(f.close_hi) + "]" : "");
    c.forecast.title = f ? "for the candle opening " + CC.time(f.target_time) : "no forecast yet";
    set(c.prob, f ? CC.pct(f.prob_up, 0) : "–");
    const s = entry.skill_7d;
    set(c.skill, skill(s && s.close), "num " + (s && s.close > 0 ? "up" :
      s && s.close < 0 ? "down" : ""));
    set(c.range, skill(s && s.range), "num " + (s && s.range > 0 ? "up" :
      s && s.range < 0 ? "down" : ""));
    set(c.statusBadge, entry.status || "–", "badge " + (BADGES[entry.status] || ""));
    set(c.statusReason, entry.status_reason || "");
  }

  function compare(a, b) {
    const get = VALUES[sort.key];
    const x = get(a.entry);
    const y = get(b.entry);
    const xm = x == null || (typeof x === "number" && !isFinite(x));
    const ym = y == null || (typeof y === "number" && !isFinite(y));
    if (xm || ym) return xm === ym ? 0 : xm ? 1 : -1;
    const order = typeof x === "string" ? x.localeCompare(y) : x - y;
    return order * sort.dir || keyOf(a.entry).localeCompare(keyOf(b.entry));
  }

  // Puts the rows in order: the sort's, else the service's (the order of /api/pairs).
  function arrange(order) {
    const tbody = document.querySelector("#markets tbody");
    let list = order.map((key) => rows.get(key));
    if (sort.key) list = list.slice().sort(compare);
    const current = Array.from(tbody.rows);
    const same = current.length === list.length && list.every((r, i) => current[i] === r.tr);
    if (same) return;
    const fragment = document.createDocumentFragment();
    list.forEach((r) => fragment.append(r.tr));
    tbody.append(fragment);
  }

  let lastOrder = [];
  function render(entries) {
    const seen = new Set();
    const fresh = [];
    entries.forEach((entry) => {
      const key = keyOf(entry);
      seen.add(key);
      let row = rows.get(key);
      if (!row) { row = makeRow(entry); rows.set(key, row); fresh.push(row); }
      fill(row, entry);
    });
    rows.forEach((row, key) => { if (!seen.has(key)) { row.tr.remove(); rows.delete(key); } });
    lastOrder = entries.map(keyOf);
    arrange(lastOrder);
    CC.text("markets-count", entries.length === 1 ? "1 pair" : entries.length + " pairs");
    document.getElementById("markets").dataset.rows = String(entries.length);
  }

  async function load() {
    if (loading) return;
    loading = true;
    clearTimeout(timer);
    try {
      // Revalidated with the ETag when the service sends one: an unchanged list costs no body.
      const response = await fetch(CC.url("/api/pairs"), { cache: "no-store",
        headers: Object.assign({ Accept: "application/json" },
          etag ? { "If-None-Match": etag } : {}) });
      if (response.status === 200) {
        const data = await response.json();
        etag = response.headers.get("ETag");
        render(data.pairs || []);
        CC.banner("");
      } else if (response.status !== 304) {
        let detail = null;
        try { detail = (await response.json()).detail; } catch (e) { detail = null; }
        CC.banner("The pair list could not be read: " + (detail || "HTTP " + response.status),
          "bad");
      }
    } catch (e) {
      CC.banner("The pair list could not be read: the server is unreachable.", "bad");
    } finally {
      loading = false;
      timer = setTimeout(load, REFRESH_MS);
    }
  }

  function sortBy(th) {
    const key = th.dataset.sort;
    sort.dir = sort.key === key ? -sort.dir : 1;
    sort.key = key;
    document.querySelectorAll("#markets thead th[data-sort]").forEach((h) => {
      if (h === th) h.setAttribute("aria-sort", sort.dir > 0 ? "ascending" : "descending");
      else h.removeAttribute("aria-sort");
    });
    arrange(lastOrder);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("markets");
    table.querySelectorAll("thead th[data-sort] button").forEach((button) => {
      button.addEventListener("click", () => sortBy(button.closest("th")));
    });
    // A click anywhere on a row opens its pair; the pair's link serves keyboards and
    // middle-clicks (a new tab) by itself.
    table.tBodies[0].addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      const tr = event.target.closest("tr[data-href]");
      if (tr && !String(window.getSelection() || "")) location.assign(tr.dataset.href);
    });
    let first = true;
    CC.onUpdate(() => {
      const done = load();
      if (first) { first = false; done.then(() => CC.ready([])); }
    });
  });
})();
