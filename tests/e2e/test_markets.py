"""The markets page and the pair picker in a real browser, with three followed pairs.

The service serves the API and the pages only (`--no-scheduler`, no stream): its database
holds two days of real BTC candles for three pairs (BTCUSDT 5m, the same rescaled as ETHUSDT
5m, and BTCUSDT 1h built from them), so the page is checked against fixed data, not a race.
The live multi-pair service in a browser is the acceptance test of issue 9.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from candlecast.domain import parse_iso_utc
from candlecast.store import candles, db
from tests.e2e.harness import (
    PageWatch,
    Server,
    layout_problems,
    missing_browser,
    serve,
    shoot,
    wait_for,
    wait_ready,
)
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.e2e

THREE = ("BTCUSDT:5m", "ETHUSDT:5m", "BTCUSDT:1h")
STEP = 300_000
HOUR = 3_600_000
DAYS = 2
Candle = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]


def _rows_5m() -> list[Candle]:
    rows: list[Candle] = []
    with shared_data_path(MAIN_CSV).open(newline="") as handle:
        for row in csv.DictReader(handle):
            o, h, lo, c, v = (Decimal(row[k]) for k in ("open", "high", "low", "close", "volume"))
            rows.append((parse_iso_utc(row["open_time"]), o, h, lo, c, v))
            if len(rows) == DAYS * 288:
                break
    return rows


def _stored(rows: list[Candle], step: int) -> Any:
    return [
        (t, str(o), str(h), str(lo), str(c), str(v), t + step - 1, None, None, None, None)
        for t, o, h, lo, c, v in rows
    ]


def _hourly(rows: list[Candle]) -> Any:
    hours: dict[int, list[Candle]] = {}
    for row in rows:
        hours.setdefault(row[0] - row[0] % HOUR, []).append(row)
    whole = [(start, part) for start, part in sorted(hours.items()) if len(part) == 12]
    return [
        (
            start,
            part[0][1],
            max(r[2] for r in part),
            min(r[3] for r in part),
            part[-1][4],
            sum((r[5] for r in part), Decimal(0)),
        )
        for start, part in whole
    ]


def _store_three_pairs(path: Path) -> None:
    engine = db.create_store_engine(f"sqlite:///{path}")
    try:
        db.upgrade(engine)
        btc = _rows_5m()
        scale = Decimal("0.035")
        eth = [
            (t, o * scale, h * scale, lo * scale, c * scale, v * 20) for t, o, h, lo, c, v in btc
        ]
        with db.write_transaction(engine) as connection:
            for symbol, interval, rows in (
                ("BTCUSDT", "5m", _stored(btc, STEP)),
                ("ETHUSDT", "5m", _stored(eth, STEP)),
                ("BTCUSDT", "1h", _stored(_hourly(btc), HOUR)),
            ):
                candles.upsert_candles(
                    connection,
                    symbol=symbol,
                    interval=interval,
                    rows=rows,
                    source="file",
                    fetched_at=0,
                )
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def three_pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    reason = missing_browser()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    folder = tmp_path_factory.mktemp("markets")
    _store_three_pairs(folder / "candlecast.db")
    with serve(
        folder,
        ("--no-scheduler",),
        # Nothing listens there: this service never asks the exchange for anything.
        binance_url="http://127.0.0.1:9",
        ws_url="ws://127.0.0.1:9",
        CANDLECAST_PAIRS=",".join(THREE),
        CANDLECAST_STREAM="false",
    ) as server:
        yield server


def _order(page: Any) -> list[str]:
    order: list[str] = page.eval_on_selector_all(
        "#markets tbody tr", "rows => rows.map((r) => r.dataset.pair)"
    )
    return order


def test_markets_lists_sorts_and_opens_each_pair(three_pairs: Server, context_factory: Any) -> None:
    listed = three_pairs.get("/api/pairs")
    assert listed.status_code == 200, f"GET /api/pairs: {listed.status_code} {listed.text[:200]}"
    entries = {f"{e['symbol']}:{e['interval']}": e for e in listed.json()["pairs"]}
    assert set(entries) == set(THREE)

    page = context_factory().new_page()
    watch = PageWatch()
    watch.attach(page)
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/" in r.url else None)
    page.goto(three_pairs.base_url + "/markets")
    wait_ready(page)
    wait_for(lambda: len(_order(page)) == 3, timeout=10, what="three rows")
    assert sorted(_order(page)) == sorted(THREE)
    assert page.locator("#markets tbody").count() == 1
    # Every row has its sparkline, drawn from sparkline_24h.
    for name, entry in entries.items():
        row = page.locator(f'#markets tbody tr[data-pair="{name}"]')
        points = row.locator("svg.sparkline polyline").get_attribute("points") or ""
        closes = len([v for v in entry["sparkline_24h"] if v is not None])
        # One point per pixel (96) and the last close, at most.
        expected = 0 if closes < 2 else closes if closes <= 96 else 97
        assert closes > 1 and len(points.split()) == expected, (name, closes)

    # Sorting: a click on a header, again to reverse; the keyboard works the same.
    page.click("#markets th[data-sort='pair'] button")
    assert _order(page) == sorted(THREE)
    assert page.get_attribute("#markets th[data-sort='pair']", "aria-sort") == "ascending"
    page.click("#markets th[data-sort='pair'] button")
    assert _order(page) == sorted(THREE, reverse=True)
    assert page.get_attribute("#markets th[data-sort='pair']", "aria-sort") == "descending"
    page.focus("#markets th[data-sort='price'] button")
    page.keyboard.press("Enter")
    assert page.get_attribute("#markets th[data-sort='price']", "aria-sort") == "ascending"
    assert page.get_attribute("#markets th[data-sort='pair']", "aria-sort") is None
    price = {name: entry["last_close"] for name, entry in entries.items()}
    by_price = sorted(THREE, key=lambda n: (price[n] is None, price[n] or 0, n))
    assert _order(page) == by_price
    assert entries["ETHUSDT:5m"]["last_close"] < entries["BTCUSDT:5m"]["last_close"]

    # A click on a row (not on its link) opens the pair's overview, whose picker shows it.
    api_calls.clear()
    page.click('#markets tbody tr[data-pair="ETHUSDT:5m"] td[data-col="status"]')
    page.wait_for_url("**/?symbol=ETHUSDT&interval=5m")
    wait_ready(page)
    assert page.input_value("#pair-picker") == "ETHUSDT:5m"
    assert page.inner_text(".brand .pair") == "ETHUSDT · 5m"
    scoped = [url for url in api_calls if "/api/pairs" not in url]
    assert scoped and all("symbol=ETHUSDT&interval=5m" in url for url in scoped), scoped
    # The nav keeps the pair; the picker moves to another pair on the same page.
    assert page.get_attribute(".nav a[href*='/charts']", "href").endswith(
        "/charts?symbol=ETHUSDT&interval=5m"
    )
    page.select_option("#pair-picker", "BTCUSDT:1h")
    page.wait_for_url("**/?symbol=BTCUSDT&interval=1h")
    wait_ready(page)
    assert page.input_value("#pair-picker") == "BTCUSDT:1h"
    assert not watch.problems, watch.problems


def test_a_page_of_a_pair_not_followed_is_a_404_page(
    three_pairs: Server, context_factory: Any
) -> None:
    page = context_factory().new_page()
    answer = page.goto(three_pairs.base_url + "/charts?symbol=XRPUSDT&interval=5m")
    assert answer is not None and answer.status == 404
    assert "XRPUSDT:5m is not a followed pair" in page.inner_text("[data-testid=missing-pair]")
    page.click(".pair-list a:text-is('ETHUSDT · 5m')")
    page.wait_for_url("**/charts?symbol=ETHUSDT&interval=5m")
    wait_ready(page)
    assert page.input_value("#pair-picker") == "ETHUSDT:5m"


@pytest.mark.parametrize(("width", "theme"), [(1280, "dark"), (390, "light")])
def test_markets_and_the_picker_fit_a_phone_and_both_themes(
    three_pairs: Server, context_factory: Any, width: int, theme: str
) -> None:
    page = context_factory(width=width, theme=theme).new_page()
    watch = PageWatch()
    watch.attach(page)
    page.goto(three_pairs.base_url + "/markets")
    wait_ready(page)
    wait_for(lambda: len(_order(page)) == 3, timeout=10, what="three rows")
    shoot(page, f"markets-{width}-{theme}")
    assert not layout_problems(page), layout_problems(page)
    # A pair's page with the picker in its header fits too.
    page.goto(three_pairs.base_url + "/?symbol=ETHUSDT&interval=5m")
    wait_ready(page)
    shoot(page, f"overview-picker-{width}-{theme}")
    assert page.is_visible("#pair-picker")
    assert not layout_problems(page), layout_problems(page)
    assert not watch.problems, watch.problems


def _synthetic_entry(index: int) -> dict[str, Any]:
    price = 10.0 + index * 1.7
    return {
        "symbol": f"P{index:03d}USDT",
        "interval": "5m",
        "added_at": "2025-08-01T00:00:00Z",
        "last_candle_time": "2025-08-04T00:00:00Z",
        "last_candle_age_seconds": 12.0,
        "last_close": price,
        "change_24h_pct": (index % 17 - 8) / 3,
        "champion_id": index,
        "forecast": {
            "target_time": "2025-08-04T00:05:00Z",
            "close": price * 1.001,
            "close_lo": price * 0.99,
            "close_hi": price * 1.01,
            "prob_up": (index % 10) / 10,
        },
        "skill_7d": {"close": (index % 7 - 3) / 100, "range": None},
        "sparkline_24h": [price + (i % 13) * 0.01 for i in range(288)],
        "status": ("live", "degraded", "backfilling", "failed")[index % 4],
        "status_reason": None if index % 4 == 0 else "why, in words",
    }


def test_markets_stays_interactive_with_200_pairs(
    three_pairs: Server, context_factory: Any
) -> None:
    """The page's own cost at 200 pairs (the answer is served by the browser, so only building,
    sorting and opening are timed)."""
    import json

    answers = {"body": json.dumps({"pairs": [_synthetic_entry(i) for i in range(200)]})}
    page = context_factory().new_page()
    watch = PageWatch()
    watch.attach(page)
    page.route(
        "**/api/pairs",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=answers["body"]
        ),
    )
    page.goto(three_pairs.base_url + "/markets")
    # window.__ccReady: the first table drawn, in ms from the start of the navigation; counted
    # from the page's HTML received, so only the browser's work (and the polls) is in it.
    ready = wait_ready(page)
    received = page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd")
    assert len(_order(page)) == 200
    assert ready - received < 2000, f"200 rows {ready - received:.0f} ms after the HTML"
    elapsed = page.evaluate(
        """() => {
          const t0 = performance.now();
          document.querySelector("#markets th[data-sort='prob'] button").click();
          return performance.now() - t0;
        }"""
    )
    assert elapsed < 250, f"sorting 200 rows took {elapsed:.0f} ms"
    probs = page.eval_on_selector_all(
        "#markets tbody td[data-col='prob']", "cells => cells.map((c) => c.textContent)"
    )
    assert probs[0].startswith("0") and probs[-1].startswith("90"), (probs[0], probs[-1])

    # The next poll updates the rows in place (the same elements) and keeps the sort.
    page.evaluate("document.querySelectorAll('#markets tbody tr').forEach((r) => r.kept = 1)")
    changed = [_synthetic_entry(i) for i in range(200)]
    for entry in changed:
        entry["last_close"] = 1_000_000.0
    answers["body"] = json.dumps({"pairs": changed[1:]})  # and one pair removed
    wait_for(lambda: len(_order(page)) == 199, timeout=25, what="the next poll")
    prices = page.eval_on_selector_all(
        "#markets tbody td[data-col='price']", "cells => cells.map((c) => c.textContent)"
    )
    assert set(prices) == {"1,000,000.00"}, set(prices)
    assert page.evaluate("[...document.querySelectorAll('#markets tbody tr')].every(r => r.kept)")
    order = _order(page)
    assert order == sorted(order, key=lambda n: (int(n[1:4]) % 10, n)), order[:12]
    assert not watch.problems, watch.problems
