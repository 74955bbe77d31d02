"""What benchmarks.many_pairs measures from a client's side: /api/pairs latency, and the
/markets page in headless Chromium (Playwright on /usr/bin/chromium; never `playwright install`)
from navigation to a table holding a row for every followed pair."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS

ROWS_JS = "n => document.querySelectorAll('#markets tbody tr').length >= n"


def api_pairs_latency(api: str, requests: int) -> dict[str, Any]:
    """Sequential GET /api/pairs: p50/p95/p99/max in ms, the pairs listed and the body's size."""
    latencies = []
    listed = size = 0
    with httpx.Client(timeout=30) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(f"{api}/api/pairs")
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            listed, size = len(response.json()["pairs"]), len(response.content)
    ordered = sorted(latencies)

    def rank(share: float) -> float:
        return round(ordered[max(0, round(share * len(ordered)) - 1)], 2)

    return {
        "n": requests,
        "p50": round(statistics.median(latencies), 2),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 2),
        "pairs": listed,
        "bytes": size,
    }


def markets_interactive(api: str, rows: int, runs: int) -> dict[str, Any]:
    """Navigation start to `rows` table rows on /markets, in ms, each run in a new context."""
    from playwright.sync_api import sync_playwright

    times: list[float] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(runs):
                context = browser.new_context()
                page = context.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.goto(f"{api}/markets", wait_until="commit")
                page.wait_for_function(ROWS_JS, arg=rows, polling="raf", timeout=60_000)
                # performance.now() counts from the navigation's start.
                times.append(float(page.evaluate("performance.now()")))
                context.close()
        finally:
            browser.close()
    return {
        "runs_ms": [round(t) for t in times],
        "median_ms": round(statistics.median(times)) if times else None,
        "console_errors": errors[:5],
    }
