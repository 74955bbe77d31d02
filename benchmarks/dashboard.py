"""Dashboard targets, in headless Chromium against `candlecast serve` and the fake exchange:

- /charts at 90 days of 5m candles: navigation start -> the charts' last "plotly_afterplot"
  (target <= 2 s), with plotly.min.js cold (new browser context) and cached;
- the Overview's total transfer (bytes on the wire, headers included) excluding plotly.min.js
  (target <= 200 KB).

Median of several runs. Usage: python benchmarks/dashboard.py [--runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, missing_browser, serve, wait_for
from tests.fake_exchange.server import FakeExchange

from benchmarks.common import SHARED_DATA, machine, median
from candlecast.domain import parse_iso_utc

CSV = SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv"
START = "2025-10-06T00:02:30Z"  # 99 days into the file: a full 90-day window behind it


def _charts_ready_ms(page: Any, url: str) -> dict[str, float]:
    page.goto(url)
    deadline = time.monotonic() + 30
    while page.evaluate("window.__ccReady") is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the charts never finished drawing")
        page.wait_for_timeout(20)
    afterplot = float(page.evaluate("window.__ccAfterplot"))
    points = int(page.evaluate("document.getElementById('chart-candles').data[0].x.length"))
    return {"afterplot_ms": afterplot, "points": points}


_TRANSFER = """() => {
  const entries = [performance.getEntriesByType('navigation')[0],
                   ...performance.getEntriesByType('resource')];
  return entries.map((e) => ({name: e.name, bytes: e.transferSize, body: e.encodedBodySize}));
}"""


def _overview_transfer(context: Any, base: str) -> dict[str, Any]:
    page = context.new_page()
    page.goto(base + "/")
    wait_for(lambda: page.evaluate("window.__ccReady") is not None, timeout=30, what="overview")
    page.wait_for_timeout(3000)  # a couple of live polls included
    entries = page.evaluate(_TRANSFER)
    page.close()
    counted = [e for e in entries if "plotly.min.js" not in e["name"]]
    plotly = sum(e["bytes"] for e in entries if "plotly.min.js" in e["name"])
    return {
        "bytes": sum(e["bytes"] for e in counted),
        "requests": len(counted),
        "plotly_bytes": plotly,
        "largest": sorted(counted, key=lambda e: -e["bytes"])[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    from playwright.sync_api import sync_playwright

    fake = FakeExchange(csv_path=CSV, start_ms=parse_iso_utc(START), speed=1.0).start()
    try:
        with (
            tempfile.TemporaryDirectory() as folder,
            serve(
                Path(folder),
                binance_url=fake.base_url,
                ws_url=fake.ws_url,
                CANDLECAST_BACKFILL_DAYS="90",
                CANDLECAST_TRAIN_DAYS="30",
            ) as server,
        ):
            wait_for(
                lambda: server.get("/api/forecast").status_code == 200,
                timeout=240,
                what="backfill, training and a forecast",
            )
            series = server.get("/api/series?format=columns&fallback_days=90&max_points=1500")
            candles = len(server.get("/api/series?format=columns&fallback_days=90").json()["time"])
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                url = server.base_url + "/charts#90d"
                cold, warm = [], []
                for _ in range(args.runs):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    cold.append(_charts_ready_ms(page, url))
                    page.close()
                    page = context.new_page()
                    warm.append(_charts_ready_ms(page, url))
                    context.close()
                transfers = []
                for _ in range(args.runs):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    transfers.append(_overview_transfer(context, server.base_url))
                    context.close()
                browser.close()
    finally:
        fake.stop()
    report = {
        "machine": machine(),
        "candles_90d": candles,
        "series_90d_bytes": len(series.content),
        "charts_points": cold[0]["points"],
        "charts_cold_ms_median": median([r["afterplot_ms"] for r in cold]),
        "charts_warm_ms_median": median([r["afterplot_ms"] for r in warm]),
        "charts_cold_ms": [round(r["afterplot_ms"]) for r in cold],
        "charts_warm_ms": [round(r["afterplot_ms"]) for r in warm],
        "overview_bytes_median": median([t["bytes"] for t in transfers]),
        "overview_requests": transfers[0]["requests"],
        "overview_plotly_bytes": transfers[0]["plotly_bytes"],
        "overview_largest": transfers[0]["largest"],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
