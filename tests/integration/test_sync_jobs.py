"""Backfill, ingest and reconcile against the fake exchange, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from candlecast import jobs
from candlecast.domain import iso_utc, parse_iso_utc
from candlecast.exchange.rest import BinanceRest
from candlecast.store import candle_reads, gaps, runs
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.fake_exchange.server import FakeExchange
from tests.shared_data import shared_data_path

STEP = 300_000
# Mid-candle: the 12:00 candle is still open, with partial values on the exchange.
MID_CANDLE = "2025-09-30T12:02:30Z"
OHLCV = ("open", "high", "low", "close", "volume")


def _truth() -> dict[int, dict[str, str]]:
    with shared_data_path(MAIN_CSV).open(newline="") as handle:
        return {parse_iso_utc(row["open_time"]): row for row in csv.DictReader(handle)}


@pytest.fixture
def exchange_client() -> Iterator[list[BinanceRest]]:
    clients: list[BinanceRest] = []
    yield clients
    for client in clients:
        client.close()


def _client(fake: FakeExchange, clients: list[BinanceRest]) -> BinanceRest:
    client = BinanceRest(base_url=fake.base_url, backoff_base=0.01, backoff_max=0.05, max_retries=8)
    clients.append(client)
    return client


def _stored(engine: Engine) -> dict[int, tuple[object, ...]]:
    with engine.connect() as connection:
        return {
            int(str(row[0])): row
            for row in candle_reads.iter_rows(connection, symbol="BTCUSDT", interval="5m")
        }


def test_backfill_is_exact_under_faults_then_ingest_completes_the_open_candle(
    engine: Engine, fake_exchange: FakeExchangeFactory, exchange_client: list[BinanceRest]
) -> None:
    fake = fake_exchange(MAIN_CSV, start=MID_CANDLE, speed=0)
    fake.set_faults(every_429=3, retry_after_429="0.05", every_5xx=5, every_drop=7)
    client = _client(fake, exchange_client)

    report = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=90)

    truth = _truth()
    now = parse_iso_utc(MID_CANDLE)
    expected = {t: row for t, row in truth.items() if now - 90 * 86_400_000 <= t <= now - STEP}
    stored = _stored(engine)
    assert len(stored) == len(expected) == report.written.inserted
    for open_time, row in expected.items():
        got = stored[open_time]
        assert tuple(str(v) for v in got[1:6]) == tuple(row[c] for c in OHLCV), iso_utc(open_time)
    open_candle = parse_iso_utc("2025-09-30T12:00:00Z")
    assert open_candle not in stored
    injected = fake.fault_counters()
    assert injected.get("limit_429", 0) > 0 and injected.get("error_5xx", 0) > 0
    assert injected.get("drop", 0) > 0

    fake.clear_faults()
    fake.clock.set(now_ms=parse_iso_utc("2025-09-30T12:05:01Z"))
    ingested = jobs.ingest(engine, client, symbol="BTCUSDT", interval="5m", days=90)
    assert ingested.written.inserted == 1
    final = _stored(engine)[open_candle]
    assert tuple(str(v) for v in final[1:6]) == tuple(truth[open_candle][c] for c in OHLCV)


def test_rerun_with_nothing_new_costs_one_request(
    engine: Engine, fake_exchange: FakeExchangeFactory, exchange_client: list[BinanceRest]
) -> None:
    fake = fake_exchange(MAIN_CSV, start=MID_CANDLE, speed=0)
    client = _client(fake, exchange_client)
    jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=10)
    again = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=10)
    assert again.calls == 1
    assert again.fetched == 0
    fake.clock.advance(STEP)
    third = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=10)
    assert third.calls == 2 and third.written.inserted == 1


def test_reconcile_repairs_frozen_partial_candles(
    engine: Engine, fake_exchange: FakeExchangeFactory, exchange_client: list[BinanceRest]
) -> None:
    frozen_path = shared_data_path("frozen-partial-candles-2025-09-27.csv")
    jobs.import_file(engine, path=frozen_path, symbol="BTCUSDT", interval="5m")
    truth = _truth()
    with frozen_path.open(newline="") as handle:
        frozen = {parse_iso_utc(row["open_time"]): row for row in csv.DictReader(handle)}
    differing = sum(
        any(Decimal(row[c]) != Decimal(truth[t][c]) for c in OHLCV) for t, row in frozen.items()
    )
    assert len(frozen) == 424 and differing > 398

    fake = fake_exchange(MAIN_CSV, start="2025-09-28T12:00:00Z", speed=0)
    report = jobs.reconcile(
        engine, _client(fake, exchange_client), symbol="BTCUSDT", interval="5m", days=2
    )

    assert report.written.repaired == differing
    stored = _stored(engine)
    for open_time in frozen:
        got = tuple(Decimal(str(v)) for v in stored[open_time][1:6])
        assert got == tuple(Decimal(truth[open_time][c]) for c in OHLCV), iso_utc(open_time)
    with engine.connect() as connection:
        (run,) = runs.recent_runs(connection, name="reconcile")
    assert run.status == runs.OK
    assert run.details["repaired"] == differing
    assert run.details["checked"] == report.fetched
    assert len(run.details["repaired_sample"]) > 0


def test_unfillable_gap_is_recorded_not_invented(
    engine: Engine,
    fake_exchange: FakeExchangeFactory,
    exchange_client: list[BinanceRest],
    tmp_path: object,
) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    lines = shared_data_path(MAIN_CSV).read_text().splitlines()
    # Remove 2025-06-30 00:00 .. 00:25 (six candles) from what the exchange knows.
    holed = [
        line
        for line in lines
        if not line.startswith("2025-06-30T00:")
        or line[14:16] not in {"00", "05", "10", "15", "20", "25"}
    ]
    path = folder / "btcusdt-5m-2025-06-29_holed.csv"
    path.write_text("\n".join(holed) + "\n")
    fake = fake_exchange(path, start="2025-07-01T00:02:00Z", speed=0)
    client = _client(fake, exchange_client)
    report = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=2)
    assert [(iso_utc(g.first_open_time), g.missing) for g in report.unfillable] == [
        ("2025-06-30T00:00:00Z", 6)
    ]
    with engine.connect() as connection:
        found_gaps = gaps.find_gaps(connection, symbol="BTCUSDT", interval="5m")
    assert [(iso_utc(g.first_open_time), g.missing) for g in found_gaps] == [
        ("2025-06-30T00:00:00Z", 6)
    ]
    again = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=2)
    assert again.calls == 1
