"""The candle store on SQLite and PostgreSQL: exact values, idempotence, repairs, gaps."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, text

from candlecast.domain import parse_iso_utc
from candlecast.store import candle_reads, candle_rows, db, gaps
from candlecast.store import candles as store
from candlecast.store.db import write_transaction

STEP = 300_000
T0 = parse_iso_utc("2025-01-01T00:00:00Z")


def _row(i: int, close: str = "100.10", volume: str = "1.50000000") -> candle_rows.CandleRow:
    open_time = T0 + i * STEP
    return (
        open_time,
        "100.00",
        "101.0",
        "99.5",
        close,
        volume,
        open_time + STEP - 1,
        "150.25",
        12,
        None,
        None,
    )


def _write(
    engine: Engine, rows: list[candle_rows.CandleRow], source: str = "rest"
) -> store.WriteResult:
    with write_transaction(engine) as connection:
        return store.upsert_candles(
            connection, symbol="BTCUSDT", interval="5m", rows=rows, source=source, fetched_at=1
        )


def test_values_round_trip_exactly(engine: Engine) -> None:
    rows = [_row(0, close="97592.0"), _row(1, close="0.00000001", volume="0E-8")]
    _write(engine, rows)
    with engine.connect() as connection:
        stored = list(candle_reads.iter_rows(connection, symbol="BTCUSDT", interval="5m"))
    assert stored[0][4] == "97592.0"
    assert Decimal(str(stored[1][4])) == Decimal("0.00000001")
    assert stored[0][1:6] == ("100.00", "101.0", "99.5", "97592.0", "1.50000000")


def test_rewriting_the_same_candles_changes_nothing(engine: Engine) -> None:
    rows = [_row(i) for i in range(10)]
    first = _write(engine, rows)
    again = _write(engine, rows, source="file")
    assert (first.inserted, first.unchanged) == (10, 0)
    assert (again.inserted, again.repaired, again.unchanged) == (0, 0, 10)
    with engine.connect() as connection:
        sources = connection.execute(text("SELECT DISTINCT source FROM candles")).scalars().all()
    assert sources == ["rest"]


def test_numerically_equal_strings_are_not_repairs(engine: Engine) -> None:
    _write(engine, [_row(0, close="100.1")])
    result = _write(engine, [_row(0, close="100.10000000")])
    assert result.unchanged == 1 and result.repaired == 0


def test_differing_candles_are_repaired_and_counted(engine: Engine) -> None:
    _write(engine, [_row(i) for i in range(5)])
    result = _write(engine, [_row(2, close="100.2", volume="9.0")])
    assert result.repaired == 1
    assert result.repaired_sample[0]["open_time"] == T0 + 2 * STEP
    assert result.repaired_sample[0]["changed"] == {
        "close": ["100.10", "100.2"],
        "volume": ["1.50000000", "9.0"],
    }
    with engine.connect() as connection:
        candles = candle_reads.read_candles(connection, symbol="BTCUSDT", interval="5m")
    assert candles[2].close == Decimal("100.2")
    assert len(candles) == 5


def test_missing_fields_never_erase_stored_ones(engine: Engine) -> None:
    _write(engine, [_row(0)])
    partial = (*_row(0)[:7], None, None, None, None)
    result = _write(engine, [partial], source="file")
    assert result.unchanged == 1
    with engine.connect() as connection:
        (candle,) = candle_reads.read_candles(connection, symbol="BTCUSDT", interval="5m")
    assert candle.quote_volume == Decimal("150.25") and candle.trades == 12


def test_enrichment_fills_fields_the_store_lacked(engine: Engine) -> None:
    bare = (*_row(0)[:7], None, None, None, None)
    _write(engine, [bare], source="file")
    result = _write(engine, [_row(0)])
    assert result.enriched == 1 and result.repaired == 0


def test_failed_transaction_writes_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError), write_transaction(engine) as connection:
        store.upsert_candles(
            connection,
            symbol="BTCUSDT",
            interval="5m",
            rows=[_row(0)],
            source="rest",
            fetched_at=1,
        )
        raise RuntimeError("boom")
    with engine.connect() as connection:
        assert candle_reads.count_candles(connection, symbol="BTCUSDT", interval="5m") == 0


def test_gaps_and_missing_ranges(engine: Engine) -> None:
    _write(engine, [_row(i) for i in (0, 1, 2, 5, 6, 9)])
    with engine.connect() as connection:
        found_gaps = gaps.find_gaps(connection, symbol="BTCUSDT", interval="5m")
        ranges = gaps.missing_ranges(
            connection, symbol="BTCUSDT", interval="5m", first=T0 - STEP, last=T0 + 11 * STEP
        )
        pairs = gaps.summaries(connection)
    assert [(g.first_open_time, g.missing) for g in found_gaps] == [
        (T0 + 3 * STEP, 2),
        (T0 + 7 * STEP, 2),
    ]
    assert ranges == [
        (T0 - STEP, T0 - STEP),
        (T0 + 3 * STEP, T0 + 4 * STEP),
        (T0 + 7 * STEP, T0 + 8 * STEP),
        (T0 + 10 * STEP, T0 + 11 * STEP),
    ]
    assert (pairs[0].count, pairs[0].gaps, pairs[0].missing) == (6, 2, 4)


def test_results_do_not_depend_on_the_session_timezone(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("not applicable: SQLite has no session timezone")
    shifted = db.create_store_engine(
        database_url.replace("search_path", "timezone=Pacific/Kiritimati -c search_path")
    )
    db.upgrade(shifted)
    _write(shifted, [_row(0)])
    with shifted.connect() as connection:
        (candle,) = candle_reads.read_candles(connection, symbol="BTCUSDT", interval="5m")
    assert candle.open_time == T0
    shifted.dispose()


def test_frame_reads_floats_for_modelling(engine: Engine) -> None:
    _write(engine, [_row(i) for i in range(3)])
    with engine.connect() as connection:
        frame = candle_reads.read_frame(connection, symbol="BTCUSDT", interval="5m")
    assert list(frame["open_time"]) == [T0, T0 + STEP, T0 + 2 * STEP]
    assert frame["close"].dtype.kind == "f" and frame["close"].iloc[0] == pytest.approx(100.10)
    assert frame["taker_buy_base"].isna().all()


def test_migrations_are_idempotent(engine: Engine) -> None:
    assert db.upgrade(engine) == db.head_revision()
    assert db.current_revision(engine) == db.head_revision()


def test_direct_copy_falls_back_to_upsert_when_another_writer_raced(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("not applicable: the direct COPY path exists only on PostgreSQL")
    from candlecast.store.candles import _copy_new_postgresql, _write_postgresql

    _write(engine, [_row(0)])
    raced = [("BTCUSDT", "5m", *_row(i, close="100.5"), "rest", 2) for i in (0, 1)]
    with write_transaction(engine) as connection:
        assert _copy_new_postgresql(connection, raced) is False
        _write_postgresql(connection, raced)
    with engine.connect() as connection:
        stored = candle_reads.read_candles(connection, symbol="BTCUSDT", interval="5m")
        closes = [c.close for c in stored]
    assert closes == [Decimal("100.5"), Decimal("100.5")]


def test_tick_claims_are_won_once_and_pruned(engine: Engine) -> None:
    from candlecast.store import ticks

    with write_transaction(engine) as connection:
        assert ticks.claim(connection, name="ingest", tick=1000, holder="a", claimed_at=1)
        assert not ticks.claim(connection, name="ingest", tick=1000, holder="b", claimed_at=2)
        assert ticks.claim(connection, name="train", tick=1000, holder="b", claimed_at=2)
        assert ticks.prune(connection, older_than=2000) == 2
        assert ticks.claim(connection, name="ingest", tick=1000, holder="c", claimed_at=3)


def test_runs_left_open_by_dead_processes_are_closed(engine: Engine) -> None:
    import os
    import subprocess
    import sys

    from sqlalchemy import update

    from candlecast.store import runs
    from candlecast.store.tables import job_runs

    mine = runs.start_run(engine, name="ingest", symbol=None, interval=None, started_at=1)
    dead = runs.start_run(engine, name="train", symbol=None, interval=None, started_at=1)
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = f"{os.uname().nodename[:100]}:{finished.stdout.strip()}"
    with write_transaction(engine) as connection:
        connection.execute(update(job_runs).where(job_runs.c.id == dead).values(host=host))
    assert runs.close_abandoned(engine, finished_at=5) == 1
    with engine.connect() as connection:
        assert runs.get_run(connection, run_id=mine).status == runs.RUNNING  # type: ignore[union-attr]
        closed = runs.get_run(connection, run_id=dead)
    assert closed is not None and closed.status == runs.FAILED
    assert closed.details["error_type"] == "Abandoned"
