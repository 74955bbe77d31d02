"""Exchange faults during backfill, ingest and the stream.

Fault: each class in REST_FAULTS / STREAM_FAULTS, a 429 mid-backfill, a 418 ban.
Expected: the stored candles equal the real ones exactly; after a 429 the client waits out
Retry-After and keeps its weight budget; a 418 stops every request, in this process and the next,
until the ban ends.
Figure: candles checked, and lost / duplicated / partial / wrong counts (all must be 0).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import IPBanned
from candlecast.jobs import sync
from candlecast.store import bans, db
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.reliability.exchange_scenarios import (
    INTERVAL,
    REST_FAULTS,
    STREAM_FAULTS,
    SYMBOL,
    rest_fault_run,
    stream_fault_run,
    weight_budget_run,
)
from tests.reliability.support import check_exact, cli, cli_environment, cli_log, closed_window

pytestmark = pytest.mark.shared_data

START = "2025-09-20T12:02:30Z"


@pytest.mark.parametrize("fault", list(REST_FAULTS))
def test_rest_fault_during_backfill_and_ingest_keeps_candles_exact(
    fault: str, engine: Engine, fake_exchange: FakeExchangeFactory
) -> None:
    fake = fake_exchange(MAIN_CSV, start=START)
    tally = rest_fault_run(engine, fake, REST_FAULTS[fault])
    assert tally.faults > 0, f"{fault}: nothing was injected"
    assert tally.checked > 6000 and tally.exact, f"{fault}: {tally}"


def test_after_a_429_the_client_waits_and_keeps_its_weight_budget(
    engine: Engine, fake_exchange: FakeExchangeFactory
) -> None:
    fake = fake_exchange(MAIN_CSV, start=START)
    tally, figures = weight_budget_run(engine, fake, budget=20, retry_after=5)
    assert tally.exact and tally.checked > 8000, tally
    assert figures["rate_limited"] == 1, figures
    assert figures["first_gap_after_429_s"] >= 5.0, figures
    assert figures["max_weight_per_minute"] <= 20 and figures["minutes"] >= 2, figures


def _settings(database_url: str, base_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        binance_url=base_url,
        binance_ws_url=base_url.replace("http", "ws", 1),
        http_max_retries=2,
        api_token="reliability-token-0123456789",
    )


def test_a_ban_is_stored_once_and_the_later_end_wins(engine: Engine) -> None:
    url = "http://exchange.test"
    with db.write_transaction(engine) as connection:
        bans.record(connection, base_url=url, until_ms=5_000, recorded_at=1)
        bans.record(connection, base_url=url, until_ms=3_000, recorded_at=2)
    with engine.connect() as connection:
        assert bans.banned_until(connection, base_url=url, now_ms=4_000) == 5_000
        assert bans.banned_until(connection, base_url=url, now_ms=5_000) is None
        assert bans.banned_until(connection, base_url="http://other.test", now_ms=0) is None
    with db.write_transaction(engine) as connection:
        bans.record(connection, base_url=url, until_ms=9_000, recorded_at=3)
    with engine.connect() as connection:
        assert bans.banned_until(connection, base_url=url, now_ms=4_000) == 9_000


def test_418_stops_every_request_until_the_ban_ends_even_after_a_restart(
    fake_exchange: FakeExchangeFactory, tmp_path: Path
) -> None:
    # SQLite only (the ban's storage is tested on both above): it waits out a real ban.
    database_url = f"sqlite:///{tmp_path / 'ban.db'}"
    engine = db.create_store_engine(database_url)
    db.upgrade(engine)
    fake = fake_exchange(MAIN_CSV, start=START)
    fake.clock.set(speed=0)
    ban_seconds = 6
    fake.set_faults(every_418=2, retry_after_418=str(ban_seconds), ban_persists=True)
    services = Services(settings=_settings(database_url, fake.base_url), engine=engine)
    banned_at = time.monotonic()
    with pytest.raises(IPBanned), services.exchange() as client:
        sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=10)
    # Requests already in flight on other threads when the 418 came back may still arrive.
    before = fake.fault_counters()
    # A new client in this process, then a new process: neither may send a single request.
    with pytest.raises(IPBanned), services.exchange() as client:
        sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=10)
    env = cli_environment(database_url, fake.base_url)
    process = cli(["backfill", "--days", "10"], env, tmp_path)
    assert process.wait(timeout=60) == 1, cli_log(tmp_path)
    assert "banned" in cli_log(tmp_path), cli_log(tmp_path)
    assert time.monotonic() - banned_at < ban_seconds, "the check ran past the ban"
    assert fake.fault_counters() == before

    time.sleep(max(0.0, ban_seconds + 0.5 - (time.monotonic() - banned_at)))
    fake.set_faults(every_418=0, ban_persists=False)
    process = cli(["backfill", "--days", "10"], env, tmp_path)
    assert process.wait(timeout=120) == 0, cli_log(tmp_path)
    first, last = closed_window(fake.clock.now_ms(), 10)
    tally = check_exact(
        engine, fake.market, first=first, last=last, exchange_now=fake.clock.now_ms()
    )
    assert tally.exact and tally.checked == (last - first) // 300_000 + 1, tally


@pytest.mark.parametrize("fault", list(STREAM_FAULTS))
def test_stream_fault_keeps_candles_exact(
    fault: str, fake_exchange: FakeExchangeFactory, tmp_path: Path
) -> None:
    # SQLite only here (the store's writes are the same on both; see the REST faults), to keep
    # CI short; the benchmark runs these on PostgreSQL too. 600x: two candles close per second.
    database_url = f"sqlite:///{tmp_path / 'stream.db'}"
    engine = db.create_store_engine(database_url)
    db.upgrade(engine)
    fake = fake_exchange(MAIN_CSV, start=START, speed=600, ws_update_ms=40)
    settings = _settings(database_url, fake.base_url)
    try:
        tally = stream_fault_run(engine, fake, settings, STREAM_FAULTS[fault], closes=8)
    finally:
        engine.dispose()
    assert tally.faults > 0, f"{fault}: nothing was injected"
    assert tally.exact and tally.checked >= 280, f"{fault}: {tally}"
