// Shared helpers for every page: API reads, formatting in local time, themed Plotly charts,
// the theme toggle and live updates (polling /api/version with an ETag).
"use strict";
(function () {
  const CC = (window.CC = {});
  const body = document.body;
  const INTERVALS = { m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };
  const iv = body.dataset.interval || "5m";
  CC.STEP = parseInt(iv, 10) * (INTERVALS[iv.slice(-1)] || 60e3);
  CC.POLL_MS = 2000;
  // The path prefix the service is served under behind a reverse proxy ("" or "/prefix"):
  // every request and link a script makes goes below it, never to the host's root.
  const rootMeta = document.querySelector('meta[name="candlecast-root"]');
  CC.root = ((rootMeta && rootMeta.content) || "").replace(/\/+$/, "");
  CC.url = (path) => (path.charAt(0) === "/" ? CC.root + path : path);
  // The pair this page shows (the server resolved ?symbol=&interval=, or the default pair).
  // Every pair-scoped API read carries it, so the page and its data are always the same pair.
  CC.pair = { symbol: body.dataset.symbol || "", interval: body.dataset.interval || "" };
  const UNSCOPED = /^\/api\/(pairs|docs|openapi)/;
  CC.withPair = function (path) {
    if (!CC.pair.symbol || path.indexOf("/api/") !== 0 || UNSCOPED.test(path)) return path;
    if (/[?&](symbol|interval)=/.test(path)) return path;
    return path + (path.indexOf("?") < 0 ? "?" : "&") + "symbol=" +
      encodeURIComponent(CC.pair.symbol) + "&interval=" + encodeURIComponent(CC.pair.interval);
  };
  // A page of the dashboard for a pair: /?symbol=..&interval=.. under the prefix.
  CC.pageUrl = (path, symbol, interval) => CC.url(path) + "?symbol=" +
    encodeURIComponent(symbol) + "&interval=" + encodeURIComponent(interval);

  // --- API -------------------------------------------------------------------------------
  // Never throws: {ok, status, data, detail}; status 0 means the server was unreachable.
  async function fetchJSON(path) {
    try {
      const response = await fetch(CC.url(CC.withPair(path)),
        { headers: { Accept: "application/json" } });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      const detail = data && typeof data.detail === "string" ? data.detail : null;
      return { ok: response.ok, status: response.status, data: data, detail: detail };
    } catch (e) {
      return { ok: false, status: 0, data: null, detail: "the server is unreachable" };
    }
  }
  // Reads started early (while plotly.min.js is still being evaluated) are handed over once.
  const early = new Map();
  CC.get = function (path) {
    const started = early.get(path);
    if (started) { early.delete(path); return started; }
    return fetchJSON(path);
  };
  // The window in days chosen by the URL hash (#7d), else the page's default.
  CC.hashDays = function (allowed, fallback) {
    const days = parseInt((location.hash || "").slice(1), 10);
    return allowed.includes(days) ? days : fallback;
  };
  function prefetch(status) {
    const urls = (body.dataset.prefetch || "").split(" ").filter(Boolean);
    if (!status.last_candle_time || !urls.length) return;
    const allowed = (body.dataset.days || "").split(",").map(Number);
    const days = CC.hashDays(allowed, Number(body.dataset.daysDefault || 7));
    urls.forEach((url) => {
      const path = url.replace("{days}", String(days));
      early.set(path, fetchJSON(path));
    });
    body.dataset.prefetch = "";
  }

  // --- Formatting --------------------------------------------------------------------------
  // Built once per digit count: a NumberFormat costs far more to make than to use, and the
  // markets table formats thousands of numbers per update.
  const formats = new Map();
  const nf = function (digits) {
    let format = formats.get(digits);
    if (!format) {
      format = new Intl.NumberFormat(undefined, {
        minimumFractionDigits: digits, maximumFractionDigits: digits });
      formats.set(digits, format);
    }
    return format;
  };
  const fmt2 = nf(2);
  CC.num = (x, digits) => (x == null || !isFinite(x) ? "–" : nf(digits).format(x));
  CC.price = (x) => (x == null || !isFinite(x) ? "–" : fmt2.format(x));
  CC.pct = (x, digits) => (x == null || !isFinite(x) ? "–" :
    nf(digits == null ? 1 : digits).format(100 * x) + "%");
  CC.signed = function (x, digits) {
    if (x == null || !isFinite(x)) return "–";
    const d = digits == null ? 3 : digits;
    const r = Number(x.toFixed(d));
    return (r > 0 ? "+" : r < 0 ? "−" : "") + nf(d).format(Math.abs(r));
  };
  CC.ms = (t) => (typeof t === "number" ? t : Date.parse(t));
  const dtf = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short",
    day: "numeric", hour: "2-digit", minute: "2-digit" });
  const tf = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  CC.time = (t) => (t == null ? "–" : dtf.format(new Date(CC.ms(t))));
  const sdf = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit" });
  CC.shortTime = (t) => (t == null ? "–" : sdf.format(new Date(CC.ms(t))));
  CC.clock = (t) => (t == null ? "–" : tf.format(new Date(CC.ms(t))));
  CC.tzLabel = (function () {
    const minutes = -new Date().getTimezoneOffset();
    const sign = minutes >= 0 ? "+" : "−";
    const hh = String(Math.floor(Math.abs(minutes) / 60)).padStart(2, "0");
    const mm = String(Math.abs(minutes) % 60).padStart(2, "0");
    let zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    return "UTC" + sign + hh + ":" + mm + (zone ? ", " + zone : "");
  })();
  // --- Clocks ----------------------------------------------------------------------------
  // Candle ages read the exchange's clock, job and retry times the service host's clock: both
  // measured against the browser's on every fresh /api/version answer, so a host or a browser
  // whose clock is hours off still shows "closed 2 min ago".
  let exchangeSkew = 0;
  let hostSkew = 0;
  CC.now = () => Date.now() + exchangeSkew;
  CC.hostNow = () => Date.now() + hostSkew;
  function measureClocks(response, data, sent, received) {
    const mid = (sent + received) / 2;
    if (typeof data.exchange_now_ms === "number") exchangeSkew = data.exchange_now_ms - mid;
    // The Date header counts whole seconds: under 2 s apart is the same clock.
    const date = Date.parse(response.headers.get("Date") || "") + 500;
    if (isFinite(date)) hostSkew = Math.abs(date - mid) < 2000 ? 0 : date - mid;
  }
  CC.ago = function (t, now) {
    const seconds = Math.round(((now == null ? CC.now() : now) - CC.ms(t)) / 1000);
    if (!isFinite(seconds)) return "–";
    const abs = Math.abs(seconds);
    const unit = abs < 90 ? [abs, "s"] : abs < 5400 ? [Math.round(abs / 60), "min"] :
      abs < 172800 ? [Math.round(abs / 3600), "h"] : [Math.round(abs / 86400), "days"];
    return seconds >= 0 ? unit[0] + " " + unit[1] + " ago" : "in " + unit[0] + " " + unit[1];
  };
  CC.agoHost = (t) => CC.ago(t, CC.hostNow());
  CC.duration = function (s) {
    if (s == null || !isFinite(s)) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    return Math.round(s / 60) + " min";
  };
  // Plotly shows numeric dates as UTC; shifting by the local offset shows local wall time.
  CC.lx = (t) => { const ms = CC.ms(t); return ms - new Date(ms).getTimezoneOffset() * 60e3; };
  CC.wilson = function (hits, n) {
    if (!n) return [NaN, NaN];
    const z = 1.959964;
    const p = hits / n;
    const d = 1 + (z * z) / n;
    const c = (p + (z * z) / (2 * n)) / d;
    const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
    return [c - h, c + h];
  };
  CC.skillNote = function (skill, what) {
    if (skill == null || !isFinite(skill)) return "not enough scored forecasts yet";
    const pct = Math.abs(skill * 100).toFixed(1) + "%";
    if (Math.abs(skill) < 0.0005) return "no better and no worse than " + what;
    return skill > 0 ? pct + " lower error than " + what : pct + " higher error than " + what;
  };

  // --- DOM -------------------------------------------------------------------------------
  CC.$ = (id) => document.getElementById(id);
  CC.text = function (id, value, cls) {
    const el = CC.$(id);
    if (!el) return;
    el.textContent = value;
    if (cls !== undefined) el.className = cls;
  };
  CC.h = function (tag, attrs, children) {
    const el = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v == null) return;
      if (k === "text") el.textContent = v; else if (k === "cls") el.className = v;
      else el.setAttribute(k, v);
    });
    (children || []).forEach((c) => el.append(c instanceof Node ? c : String(c)));
    return el;
  };
  // Replaces a chart or block with a plain-language explanation.
  CC.empty = function (id, title, text) {
    const el = CC.$(id);
    if (!el) return;
    if (window.Plotly && el.classList.contains("js-plotly-plot")) window.Plotly.purge(el);
    el.replaceChildren(CC.h("div", { cls: "empty", role: "status" },
      [CC.h("strong", { text: title }), CC.h("span", { text: text })]));
    el.dataset.state = "empty";
  };
  CC.banner = function (text, kind) {
    const el = CC.$("banner");
    if (!el) return;
    // While the connection banner says the exchange is offline, a page's own "unreachable"
    // banner would only repeat it.
    const conn = CC.$("conn-banner");
    if (text && conn && !conn.hidden && String(text).indexOf(EXCHANGE_TITLE) === 0) text = "";
    el.hidden = !text;
    el.textContent = text || "";
    el.className = "banner " + (kind || "warn");
  };

  // Why there are no candles yet, in words: the exchange refusing, or a backfill under way.
  const EXCHANGE_ERRORS = /^(Exchange|RateLimited|IPBanned|RestrictedLocation)/;
  const EXCHANGE_TITLE = "The exchange is unreachable";
  CC.whyNoData = async function () {
    const jobs = await CC.get("/api/jobs?limit=20");
    if (!jobs.ok) {
      return { title: "No data yet", text: "No candles are stored yet, and the job list could " +
        "not be read (" + (jobs.detail || "HTTP " + jobs.status) + ")." };
    }
    const failed = (jobs.data.runs || []).find((r) => r.status === "failed" &&
      EXCHANGE_ERRORS.test(String((r.details || {}).error_type || "")));
    if (failed) {
      const conn = last && last.connection;
      // The red banner at the top already says why and what to check: do not repeat it.
      const text = conn && conn.state === "offline" ? "No candles are stored yet: the " +
        "exchange has not answered. What to check is in the red banner at the top; this page " +
        "fills in by itself once the exchange answers." :
        "No candles are stored yet: the last " + failed.name + " failed (" +
        (failed.details.error || failed.details.error_type) + "). " +
        (conn && conn.hint ? conn.hint + " " : "") + "The service keeps retrying by itself.";
      return { exchange: true, title: EXCHANGE_TITLE, text: text };
    }
    const running = (jobs.data.runs || []).find((r) => r.status === "running");
    return { title: "No data yet", text: running
      ? "No candles are stored yet: " + running.name + " is running. This page fills in by " +
        "itself as soon as they land."
      : "No candles are stored yet. `candlecast serve` backfills at start; this page fills in " +
        "by itself as soon as candles land." };
  };

  // --- Charts ----------------------------------------------------------------------------
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  CC.colors = () => ({
    text: css("--text"), muted: css("--muted"), grid: css("--border"), up: css("--up"),
    down: css("--down"), pred: css("--pred"), base: css("--base"), accent: css("--accent"),
    surface: css("--surface"), shade: css("--accent-soft"),
  });
  const charts = new Map();
  CC.plot = function (id, traces, layout) {
    const el = CC.$(id);
    if (!el || !window.Plotly) return Promise.resolve();
    if (el.dataset.state === "empty") { el.replaceChildren(); el.dataset.state = ""; }
    const c = CC.colors();
    const axis = { gridcolor: c.grid, zerolinecolor: c.grid, linecolor: c.grid,
      tickfont: { color: c.muted }, automargin: true };
    const base = {
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: c.text, size: 12, family: "system-ui, sans-serif" },
      margin: { l: 8, r: 8, t: 8, b: 8 }, hovermode: "x unified", dragmode: "pan",
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { color: c.muted } },
      hoverlabel: { bgcolor: c.surface, bordercolor: c.grid, font: { color: c.text } },
      xaxis: Object.assign({ type: "date", rangeslider: { visible: false } }, axis),
      yaxis: Object.assign({}, axis),
    };
    const merged = Object.assign({}, base, layout || {});
    ["xaxis", "yaxis", "yaxis2"].forEach((k) => {
      if (layout && layout[k]) merged[k] = Object.assign({}, k === "xaxis" ? base.xaxis : axis,
        layout[k]);
    });
    charts.set(id, { traces: traces, layout: layout });
    // On a phone the mode bar would cover the legend; pinch and drag still work.
    const config = { responsive: true, displaylogo: false, scrollZoom: false,
      displayModeBar: window.innerWidth > 600 ? "hover" : false,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toImage"] };
    return window.Plotly.react(el, traces, merged, config).then(() => {
      if (!el.dataset.hooked) {
        el.dataset.hooked = "1";
        el.on("plotly_afterplot", () => { window.__ccAfterplot = performance.now(); });
      }
      window.__ccAfterplot = Math.max(window.__ccAfterplot || 0, performance.now());
      el.dataset.points = String(traces.reduce((n, t) => n + ((t.x && t.x.length) || 0), 0));
      el.dataset.state = "ready";
    });
  };
  CC.localAxis = (extra) => Object.assign({ title: { text: "local time (" + CC.tzLabel + ")",
    font: { size: 11 } } }, extra || {});
  // Signals that a page's charts are drawn (used by the browser tests and the benchmark).
  CC.ready = function (promises) {
    return Promise.all(promises).then(() => {
      if (window.__ccReady == null) window.__ccReady = performance.now();
      document.dispatchEvent(new CustomEvent("cc:ready"));
    });
  };

  // --- Tables ----------------------------------------------------------------------------
  // A table that does not fit its box is shown as one card per row, each cell labelled with
  // its column, rather than cut off or scrolled sideways. Checked whenever its rows change or
  // the window is resized; pages only fill in their tbody.
  function labelCells(table) {
    const heads = Array.from(table.querySelectorAll("thead th")).map((th) =>
      th.dataset.label || th.textContent.replace(/\s+/g, " ").trim());
    table.querySelectorAll("tbody tr").forEach((tr) => {
      let col = 0;
      Array.from(tr.cells).forEach((td) => {
        if (td.colSpan === 1 && heads[col]) td.dataset.label = heads[col];
        col += td.colSpan;
      });
    });
  }
  function fit(table) {
    const box = table.parentElement;
    if (!box || !box.clientWidth) return;
    table.classList.remove("stacked");
    if (table.scrollWidth > box.clientWidth + 1) table.classList.add("stacked");
  }
  CC.fitTables = () => document.querySelectorAll("table.fit").forEach(fit);
  document.addEventListener("DOMContentLoaded", () => {
    const tables = document.querySelectorAll("table.fit");
    const watcher = new MutationObserver((records) => {
      const touched = new Set(records.map((r) => r.target.closest("table")));
      touched.forEach((table) => { if (table) { labelCells(table); fit(table); } });
    });
    tables.forEach((table) => {
      labelCells(table);
      fit(table);
      if (table.tBodies[0]) watcher.observe(table.tBodies[0], { childList: true });
    });
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(CC.fitTables);
    });
  });

  // --- Theme -----------------------------------------------------------------------------
  function applyTheme(theme) {
    document.documentElement.setAttribute("data-theme", theme);
    charts.forEach((spec, id) => {
      const el = CC.$(id);
      if (el && el.dataset.state === "ready") CC.plot(id, spec.traces, spec.layout);
    });
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".tz-label").forEach((el) => { el.textContent = CC.tzLabel; });
    const current = document.querySelector(".nav [aria-current]");
    const nav = current && current.parentElement;
    if (nav && nav.scrollWidth > nav.clientWidth) {
      nav.scrollLeft = current.offsetLeft - (nav.clientWidth - current.offsetWidth) / 2;
    }
    // The pair picker opens the same page (and tab: #7d) for the chosen pair.
    const picker = CC.$("pair-picker");
    if (picker) picker.addEventListener("change", () => {
      const parts = picker.value.split(":");
      const next = new URL(location.href);
      next.searchParams.set("symbol", parts[0]);
      next.searchParams.set("interval", parts[1]);
      location.assign(next.toString());
    });
    const toggle = CC.$("theme-toggle");
    if (toggle) toggle.addEventListener("click", () => {
      const next = document.documentElement.getAttribute("data-theme") === "dark"
        ? "light" : "dark";
      try { localStorage.setItem("cc-theme", next); } catch (e) { /* private mode */ }
      applyTheme(next);
    });
  });

  // --- Live updates ----------------------------------------------------------------------
  // Pages register a callback; it runs once with the current status, then on every change.
  const listeners = [];
  let etag = null;
  let last = null;
  let timer = null;
  CC.status = () => last;
  CC.onUpdate = function (fn) {
    listeners.push(fn);
    if (last) fn(last, true);
  };
  // The header's dot: how the service reaches the exchange (live, degraded, offline).
  const LABELS = { live: "live", degraded: "degraded", offline: "offline",
    starting: "starting…", passive: "API only" };
  const TITLES = {
    live: "Live: the exchange's stream delivers each candle as it closes.",
    degraded: "Degraded: candles arrive by REST polling, not the live stream.",
    offline: "Offline: the exchange cannot be reached.",
    starting: "Starting: waiting for the exchange's first answer.",
    passive: "This process serves the API only; another process follows the exchange.",
  };
  function retryText(iso) {
    if (!iso) return "The service keeps retrying by itself.";
    const due = Math.round((CC.ms(iso) - CC.hostNow()) / 1000);
    if (due < 1) return "Retrying now.";
    const wait = due < 90 ? due + " s" : Math.round(due / 60) + " min";
    return "Next retry in " + wait + " (at " + CC.clock(iso) + ").";
  }
  CC.retryText = retryText;
  function showConnection(conn, serverError) {
    const el = CC.$("live");
    const banner = CC.$("conn-banner");
    let state = "starting";
    let title = TITLES.starting;
    let lines = null;
    if (serverError) {
      state = "unreachable";
      title = "The candlecast server does not answer (" + serverError + ").";
      lines = [CC.h("strong", { text: title }), CC.h("div", { text: "This page keeps " +
        "asking every few seconds and catches up by itself." })];
    } else if (conn) {
      state = LABELS[conn.state] ? conn.state : "starting";
      title = TITLES[state] + (conn.reason ? " " + conn.reason : "");
      if (state === "offline") {
        lines = [CC.h("strong", { text: "Offline: the exchange cannot be reached." }),
          CC.h("div", { cls: "why", text: conn.reason || "It has not answered." }),
          CC.h("div", { text: conn.hint || "" }),
          CC.h("div", { cls: "retry", text: retryText(conn.next_retry_at) })];
      }
    }
    if (el) {
      el.dataset.state = state;
      el.textContent = state === "unreachable" ? "no server" : LABELS[state];
      el.title = title;
    }
    if (banner) {
      // Rebuilt only when what it says changes; the retry countdown is updated in place, so
      // a screen reader announces the outage once, not every two seconds.
      const key = lines ? lines.map((n) => (n.className === "retry" ? "" : n.textContent))
        .join("|") : "";
      const retry = banner.querySelector(".retry");
      if (key && key === banner.dataset.key && retry) {
        retry.textContent = lines[lines.length - 1].textContent;
      } else {
        banner.replaceChildren(...(lines || []));
        banner.dataset.key = key;
      }
      banner.hidden = !lines;
    }
  }
  async function poll() {
    clearTimeout(timer);
    if (document.hidden) { timer = setTimeout(poll, CC.POLL_MS * 5); return; }
    let changed = false;
    try {
      // Revalidated by hand, past the browser's cache: every 200 carries a fresh exchange clock
      // to measure the skew against, and a 304 costs no body.
      const sent = Date.now();
      const response = await fetch(CC.url(CC.withPair("/api/version")), { cache: "no-store",
        headers: etag ? { "If-None-Match": etag } : {} });
      const received = Date.now();
      if (response.status === 200) {
        const data = await response.json();
        etag = response.headers.get("ETag");
        measureClocks(response, data, sent, received);
        last = data;
        changed = true;
        prefetch(last);
      } else if (response.status !== 304) {
        throw new Error("HTTP " + response.status);
      }
      showConnection(last && last.connection, null);
    } catch (e) {
      showConnection(null, e && e.message && e.message.startsWith("HTTP") ? e.message :
        "no answer");
    }
    if (changed) {
      const first = listeners.first === undefined;
      listeners.first = false;
      listeners.forEach((fn) => {
        try { fn(last, first); } catch (err) { console.warn("update failed", err); }
      });
    }
    timer = setTimeout(poll, CC.POLL_MS);
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  // The first poll starts now, before the charting library is evaluated, not at DOMContentLoaded.
  poll();
  document.addEventListener("DOMContentLoaded", () => {
    if (body.dataset.page === "guide" || body.dataset.ready === "now") CC.ready([]);
  });
})();
