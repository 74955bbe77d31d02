"""`candlecast serve` following 10 pairs at 60x speed on the fake exchange, on both databases.

Real BTC and ETH 5m candles plus eight real BTC segments renamed and rescaled. Every pair's
candles must be exact through a stream cut mid-candle; every pair gets one forecast per candle,
recorded before that candle closed, and scored; a pair added while it runs is backfilled, and a
pair removed stops and answers 404.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import Engine, func, select

from candlecast.domain import Pair
from candlecast.store.tables import candles, forecasts, job_runs, models
from tests.e2e.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PageWatch,
    missing_browser,
    wait_for,
    wait_ready,
)
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.fake_exchange.market import Market, load_market
from tests.fake_exchange.server import FakeExchange
from tests.fake_exchange.synthetic import synthetic_markets
from tests.integration.test_service_e2e import (
    SPEED,
    STEP,
    Processes,
    _environment,
    _free_port,
    _wait_for,
    processes,
)
from tests.shared_data import shared_data_path

__all__ = ["processes"]

ETH_CSV = "ethusdt-5m-2025-08-19_2025-09-20-full.csv"
START = "2025-09-18T12:02:30Z"
TOKEN = "e2e-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _markets(count: int = 11) -> list[Market]:
    """Real BTC and ETH, then renamed, rescaled BTC segments up to `count` markets (by default
    nine: eight followed from the start, one added later)."""
    btc = load_market(shared_data_path(MAIN_CSV), None, None)
    eth = load_market(shared_data_path(ETH_CSV), None, None)
    return [btc, eth, *synthetic_markets(btc, count - 2)]


def _ready_pairs(engine: Engine) -> set[tuple[str, str]]:
    """Pairs with a champion and at least one recorded forecast."""
    with engine.connect() as connection:
        champions = {
            (str(symbol), str(interval))
            for symbol, interval in connection.execute(
                select(models.c.symbol, models.c.interval).where(models.c.status == "champion")
            )
        }
        forecasting = {
            (str(symbol), str(interval))
            for symbol, interval in connection.execute(
                select(forecasts.c.symbol, forecasts.c.interval).group_by(
                    forecasts.c.symbol, forecasts.c.interval
                )
            )
        }
    return champions & forecasting


def _check_exact(engine: Engine, market: Market, *, first: int, last: int) -> None:
    with engine.connect() as connection:
        stored = {
            row.open_time: row
            for row in connection.execute(
                select(candles).where(
                    candles.c.symbol == market.symbol,
                    candles.c.interval == market.interval,
                    candles.c.open_time.between(first, last),
                )
            )
        }
    expected = range(first, last + 1, STEP)
    missing = [t for t in expected if t not in stored]
    assert not missing, (market.symbol, missing)
    for open_time in expected:
        truth = market.rows[market.index_at_or_after(open_time)]
        row = stored[open_time]
        for name in ("open", "high", "low", "close", "volume"):
            assert row._mapping[name] == Decimal(getattr(truth, name)), (market.symbol, name)


def _check_ledger(engine: Engine, pair: Pair, *, first: int, last: int, logs: str) -> None:
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                forecasts.c.target_open_time,
                forecasts.c.made_at_exchange,
                forecasts.c.scored_at,
                forecasts.c.real_close,
            ).where(
                forecasts.c.symbol == pair.symbol,
                forecasts.c.interval == pair.interval,
                forecasts.c.target_open_time.between(first, last),
            )
        ).all()
    targets = sorted(row.target_open_time for row in rows)
    assert targets == list(range(first, last + 1, STEP)), (str(pair), targets, logs)
    for row in rows:
        assert row.made_at_exchange is not None
        assert row.made_at_exchange <= row.target_open_time + STEP - 1, str(pair)
        assert row.scored_at is not None and row.real_close is not None, str(pair)


def _markets_in_a_browser(base_url: str) -> tuple[list[str], list[str]]:
    """The pairs /markets shows (after its first poll) and the page's console problems."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            watch = PageWatch()
            watch.attach(page)
            page.goto(base_url + "/markets")
            wait_ready(page)

            def rows() -> list[str]:
                shown: list[str] = page.eval_on_selector_all(
                    "#markets tbody tr", "rows => rows.map((r) => r.dataset.pair)"
                )
                return shown

            wait_for(lambda: len(rows()) >= 10, timeout=20, what="the markets rows")
            return rows(), list(watch.problems)
        finally:
            browser.close()


def _first_target(engine: Engine, pair: Pair) -> int:
    with engine.connect() as connection:
        first = connection.execute(
            select(func.min(forecasts.c.target_open_time)).where(
                forecasts.c.symbol == pair.symbol, forecasts.c.interval == pair.interval
            )
        ).scalar_one()
    assert first is not None, str(pair)
    return int(first)


# Ten pairs' backfill and first models, then a minute of 60x replay: minutes, not seconds.
@pytest.mark.timeout(900)
def test_ten_pairs_are_exact_forecast_once_per_candle_and_change_while_running(
    engine: Engine,
    database_url: str,
    fake_exchange: FakeExchangeFactory,
    processes: Processes,
) -> None:
    markets = _markets()
    followed, later = markets[:10], markets[10]
    fake: FakeExchange = fake_exchange(
        MAIN_CSV, start=START, speed=SPEED, ws_update_ms=100, markets=markets[1:]
    )
    pairs = [Pair(m.symbol, m.interval) for m in followed]
    port = _free_port()
    env = _environment(
        database_url,
        fake,
        CANDLECAST_PAIRS=",".join(map(str, pairs)),
        CANDLECAST_BACKFILL_DAYS="4",
        CANDLECAST_TRAIN_DAYS="4",
        CANDLECAST_TRAIN_EVERY_SECONDS="120",
        CANDLECAST_INGEST_EVERY_SECONDS="30",
    )
    processes.tail = 30_000
    processes.start(["serve", "--port", str(port)], env)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    wanted = {(p.symbol, p.interval) for p in pairs}
    _wait_for(lambda: wanted <= _ready_pairs(engine), timeout=300, what="all 10 pairs forecasting")
    firsts = {pair: _first_target(engine, pair) for pair in pairs}

    time.sleep(7.5)  # mid-candle
    fake.drop_websockets()
    added = api.post("/api/pairs", json={"symbol": later.symbol, "interval": "5m"}, headers=AUTH)
    assert added.status_code == 201, added.text
    assert added.json()["symbol"] == later.symbol
    again = api.post("/api/pairs", json={"symbol": later.symbol, "interval": "5m"}, headers=AUTH)
    assert again.status_code == 409
    unknown = api.post("/api/pairs", json={"symbol": "NOPEUSDT", "interval": "5m"}, headers=AUTH)
    assert unknown.status_code == 422, unknown.text
    time.sleep(20)
    removed = pairs[-1]
    gone = api.delete(f"/api/pairs/{removed.symbol}/{removed.interval}", headers=AUTH)
    assert gone.status_code == 204, gone.text
    removed_at = fake.clock.now_ms()
    assert api.get("/api/candles", params={"symbol": removed.symbol}).status_code == 404
    assert api.delete(f"/api/pairs/{removed.symbol}/5m", headers=AUTH).status_code == 404
    time.sleep(28)
    observed_until = fake.clock.now_ms()
    time.sleep(6)  # the last candle of the window is processed

    last_closed = (observed_until - STEP) // STEP * STEP
    kept = pairs[:-1]
    logs = processes.logs()
    for market, pair in zip(followed, pairs, strict=True):
        if pair in kept:
            _check_exact(engine, market, first=firsts[pair], last=last_closed)
            _check_ledger(engine, pair, first=firsts[pair], last=last_closed, logs=logs)
    # The removed pair: nothing stored for candles that closed well after its removal.
    with engine.connect() as connection:
        newest_removed = connection.execute(
            select(func.max(candles.c.open_time)).where(candles.c.symbol == removed.symbol)
        ).scalar_one()
    assert newest_removed is not None and newest_removed <= removed_at + STEP
    # The added pair was validated, backfilled and is on the list with the others.
    listed = api.get("/api/pairs").json()["pairs"]
    assert [(p["symbol"], p["interval"]) for p in listed] == [
        *((p.symbol, p.interval) for p in kept),
        (later.symbol, "5m"),
    ]
    with engine.connect() as connection:
        later_count = connection.execute(
            select(func.count()).select_from(candles).where(candles.c.symbol == later.symbol)
        ).scalar_one()
    assert later_count >= 4 * 288 - 2, processes.logs()  # its 4 days
    for entry in listed[:-1]:
        assert entry["status"] == "live", (entry, processes.logs())
        assert entry["forecast"] is not None and entry["sparkline_24h"]
    reason = missing_browser()
    if reason:
        pytest.skip(f"every check passed but the browser's: {reason}")
    shown, problems = _markets_in_a_browser(f"http://127.0.0.1:{port}")
    assert sorted(shown) == sorted(f"{p['symbol']}:{p['interval']}" for p in listed)
    assert not problems, problems


@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_two_replicas_with_ten_pairs_run_each_pairs_tick_once(
    engine: Engine,
    database_url: str,
    fake_exchange: FakeExchangeFactory,
    processes: Processes,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("not applicable: replicas share one PostgreSQL")
    markets = _markets()[:10]
    fake = fake_exchange(MAIN_CSV, start=START, speed=SPEED, markets=markets[1:])
    pairs = [Pair(m.symbol, m.interval) for m in markets]
    env = _environment(
        database_url,
        fake,
        CANDLECAST_PAIRS=",".join(map(str, pairs)),
        CANDLECAST_BACKFILL_DAYS="4",
        CANDLECAST_TRAIN_DAYS="4",
        CANDLECAST_INGEST_EVERY_SECONDS="5",
        CANDLECAST_TRAIN_EVERY_SECONDS="3600",
        CANDLECAST_STREAM="false",
    )
    processes.start(["worker"], env)
    processes.start(["worker"], env)
    wanted = {(p.symbol, p.interval) for p in pairs}
    _wait_for(lambda: wanted <= _ready_pairs(engine), timeout=300, what="all 10 pairs ready")
    time.sleep(6)  # both replicas have scheduled every pair by now
    window_start = int(time.time() * 1000)
    time.sleep(30)
    window_end = int(time.time() * 1000)
    with engine.connect() as connection:
        counts = {
            str(symbol): int(count)
            for symbol, count in connection.execute(
                select(job_runs.c.symbol, func.count())
                .where(
                    job_runs.c.name == "ingest",
                    job_runs.c.started_at.between(window_start, window_end),
                )
                .group_by(job_runs.c.symbol)
            )
        }
    # A tick every 5 s for 30 s: about 6 per pair, never one per replica (12).
    for pair in pairs:
        assert 5 <= counts.get(pair.symbol, 0) <= 7, (pair, counts, processes.logs())
