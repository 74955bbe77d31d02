"""Exchange faults during backfill, ingest and the stream.

Fault: each class in REST_FAULTS / STREAM_FAULTS, a 429 mid-backfill, a 418 ban.
Expected: the stored candles equal the real ones exactly; after a 429 the client waits out
Retry-After and keeps its weight budget; a 418 stops every request, in this process and the next,
until the ban ends.
Figure: candles checked, and lost / duplicated / partial / wrong counts (all must be 0).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from candlecast.store import bans, db
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.reliability.exchange_scenarios import (
    REST_FAULTS,
    STREAM_FAULTS,
    ban_run,
    reliability_settings,
    rest_fault_run,
    stream_fault_run,
    weight_budget_run,
)

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
    # At most the other three workers' requests, already past the governor, leave at once.
    assert figures["sent_just_after_429"] <= 3, figures
    assert figures["first_gap_after_429_s"] >= 5.0, figures
    assert figures["max_weight_per_minute"] <= 20 and figures["minutes"] >= 2, figures


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
    # SQLite only (the ban's storage is tested on both above): it waits out a real ban, long
    # enough that a new process can start within it on a loaded machine.
    database_url = f"sqlite:///{tmp_path / 'ban.db'}"
    engine = db.create_store_engine(database_url)
    db.upgrade(engine)
    fake = fake_exchange(MAIN_CSV, start=START)
    try:
        tally, figures = ban_run(engine, database_url, fake, tmp_path, ban_seconds=20)
    finally:
        engine.dispose()
    assert figures["requests_while_banned"] == 0, figures
    assert figures["restarted_cli_exit"] == 1 and figures["restarted_cli_said_banned"], figures
    assert figures["checked_within_ban"], figures
    assert figures["after_ban_exit"] == 0, figures
    assert tally.exact and tally.checked > 2800, tally


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
    settings = reliability_settings(database_url, fake.base_url)
    try:
        tally = stream_fault_run(engine, fake, settings, STREAM_FAULTS[fault], closes=8)
    finally:
        engine.dispose()
    assert tally.faults > 0, f"{fault}: nothing was injected"
    assert tally.exact and tally.checked >= 280, f"{fault}: {tally}"


def test_candles_that_closed_before_the_stream_connected_are_fetched_at_its_first_close(
    fake_exchange: FakeExchangeFactory, tmp_path: Path
) -> None:
    # Regression: they used to wait for the next scheduled ingest (5 minutes by default).
    database_url = f"sqlite:///{tmp_path / 'lag.db'}"
    engine = db.create_store_engine(database_url)
    db.upgrade(engine)
    fake = fake_exchange(MAIN_CSV, start=START, speed=600, ws_update_ms=40)
    settings = reliability_settings(database_url, fake.base_url)
    try:
        tally = stream_fault_run(engine, fake, settings, {}, closes=6, lag_candles=3)
    finally:
        engine.dispose()
    assert tally.exact and tally.checked >= 280, tally
