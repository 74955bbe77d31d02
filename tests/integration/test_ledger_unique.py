"""One forecast per target candle and pair, enforced by the database on SQLite and PostgreSQL:
racing writers, the migration that cleans up old duplicates, and the readers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from candlecast.store import db, ledger
from candlecast.store.db import write_transaction
from candlecast.store.tables import forecasts, metadata
from tests.integration.api_support import client, load

STEP = 300_000


def _forecast(*, model_id: int, target: int, close: str, made_at: int = 1) -> ledger.Forecast:
    price = Decimal(close)
    return ledger.Forecast(
        model_id=model_id,
        symbol="BTCUSDT",
        interval="5m",
        made_at=made_at,
        made_at_exchange=None,
        asof_open_time=target - STEP,
        target_open_time=target,
        asof_close=price,
        pred_open=price,
        pred_high=price + 1,
        pred_low=price - 1,
        pred_close=price,
        pred_range=Decimal(2),
        close_lo=price - 1,
        close_hi=price + 1,
        interval_level=Decimal("0.9"),
        prob_up=Decimal("0.5"),
        baselines={"base_prob_up": 0.5},
    )


def _record(engine: Engine, forecast: ledger.Forecast) -> bool:
    with write_transaction(engine) as connection:
        return ledger.record(
            connection, forecast=forecast, close_time=forecast.target_open_time + STEP - 1
        )


def _stored(engine: Engine) -> list[tuple[int, int, Decimal]]:
    columns = (forecasts.c.target_open_time, forecasts.c.model_id, forecasts.c.pred_close)
    with engine.connect() as connection:
        rows = connection.execute(
            select(*columns).order_by(forecasts.c.target_open_time, forecasts.c.id)
        ).all()
    return [(int(t), int(m), Decimal(c)) for t, m, c in rows]


def test_a_recording_racing_an_uncommitted_one_waits_and_is_refused(engine: Engine) -> None:
    target = load(engine, days=1) + STEP
    results: dict[str, bool] = {}
    second = threading.Thread(
        target=lambda: results.update(
            second=_record(engine, _forecast(model_id=2, target=target, close="200"))
        ),
    )
    with write_transaction(engine) as connection:
        first = _forecast(model_id=1, target=target, close="100")
        assert ledger.record(connection, forecast=first, close_time=target + STEP - 1)
        second.start()
        second.join(timeout=1.5)
        # The key, not a prior read, decides: the second writer waits for this commit (the
        # unique index on PostgreSQL, the write lock on SQLite) instead of inserting beside it.
        assert second.is_alive() and not results
    second.join(timeout=30)
    assert results == {"second": False}
    assert _stored(engine) == [(target, 1, Decimal("100"))]


def test_many_simultaneous_recordings_store_exactly_one(engine: Engine) -> None:
    target = load(engine, days=1) + STEP
    count = 4
    start = threading.Barrier(count)
    results: list[bool] = []

    def race(model_id: int) -> None:
        start.wait()
        results.append(_record(engine, _forecast(model_id=model_id, target=target, close="1")))

    threads = [threading.Thread(target=race, args=(i + 1,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == [False] * (count - 1) + [True]
    assert len(_stored(engine)) == 1


def test_the_database_refuses_a_second_forecast_written_around_the_ledger(engine: Engine) -> None:
    target = load(engine, days=1) + STEP
    assert _record(engine, _forecast(model_id=1, target=target, close="100"))
    with pytest.raises(IntegrityError), write_transaction(engine) as connection:
        row = _forecast(model_id=2, target=target, close="200").__dict__
        connection.execute(insert(forecasts).values(**row))
    # Another pair's forecast for the same time is a different candle.
    other = {**_forecast(model_id=3, target=target, close="5").__dict__, "symbol": "ETHUSDT"}
    with write_transaction(engine) as connection:
        connection.execute(insert(forecasts).values(**other))


def _alembic(engine: Engine, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "candlecast.store:migrations")
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


@pytest.fixture
def at_0004(database_url: str) -> Iterator[Engine]:
    """A database migrated to 0004, before the ledger's unique key."""
    built = db.create_store_engine(database_url)
    _alembic(built, "upgrade", "0004")
    yield built
    built.dispose()


def _insert_rows(engine: Engine, rows: list[tuple[int, str, int, int]]) -> None:
    """Writes (id, symbol, target, made_at) forecasts directly, as the old race could."""
    with write_transaction(engine) as connection:
        for row_id, symbol, target, made_at in rows:
            values = _forecast(model_id=row_id, target=target, close=str(row_id), made_at=made_at)
            connection.execute(
                insert(forecasts).values(**{**values.__dict__, "id": row_id, "symbol": symbol})
            )


def test_the_migration_keeps_the_earliest_forecast_then_enforces_the_key(at_0004: Engine) -> None:
    a, b, c = 10 * STEP, 11 * STEP, 12 * STEP
    rows = [
        (1, "BTCUSDT", a, 200),  # later than 2 and 3
        (2, "BTCUSDT", a, 100),  # the earliest of `a`
        (3, "BTCUSDT", a, 100),  # as early as 2, but a larger id
        (5, "BTCUSDT", b, 50),  # the earliest of `b`, though inserted after 4
        (4, "BTCUSDT", b, 70),
        (6, "BTCUSDT", c, 10),  # alone
        (7, "ETHUSDT", a, 300),  # another pair's candle
    ]
    _insert_rows(at_0004, rows)
    assert db.upgrade(at_0004) == db.head_revision()
    columns = (forecasts.c.id, forecasts.c.symbol, forecasts.c.target_open_time)
    with at_0004.connect() as connection:
        kept = connection.execute(select(*columns).order_by(forecasts.c.id)).all()
    assert [tuple(row) for row in kept] == [
        (2, "BTCUSDT", a),
        (5, "BTCUSDT", b),
        (6, "BTCUSDT", c),
        (7, "ETHUSDT", a),
    ]
    with pytest.raises(IntegrityError):
        _insert_rows(at_0004, [(8, "BTCUSDT", c, 1)])
    # Downgrading drops the key (duplicates are accepted again); upgrading cleans them again.
    _alembic(at_0004, "downgrade", "0004")
    _insert_rows(at_0004, [(8, "BTCUSDT", c, 1)])
    _alembic(at_0004, "upgrade", "head")
    with at_0004.connect() as connection:
        ids = connection.execute(select(forecasts.c.id).order_by(forecasts.c.id)).scalars().all()
    assert ids == [2, 5, 7, 8]


def _ours(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    # procrastinate's tables (migration 0007) are its own, declared by its schema, not ours.
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not str(table or "").startswith("procrastinate_")


def test_the_tables_declare_what_the_migrations_build(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _ours}
        )
        assert compare_metadata(context, metadata) == []


def test_readers_show_the_one_stored_forecast_per_candle(engine: Engine, database_url: str) -> None:
    last = load(engine, days=1)
    targets = [last + STEP, last + 2 * STEP]
    for target in targets:
        assert _record(engine, _forecast(model_id=1, target=target, close="100"))
        assert not _record(engine, _forecast(model_id=2, target=target, close="900"))
    load(engine, days=2 * STEP / 86_400_000, first=last + STEP)
    api = client(engine, database_url)
    futures = api.get("/api/futures").json()["points"]
    assert [p["pred_close"] for p in futures] == [100.0, 100.0]
    assert [p["model_id"] for p in futures] == [1, 1]
    window = api.get("/api/ledger?days=1").json()
    assert window["forecasts"] == 2
    assert window["points"]["model_id"] == [1, 1]
    assert window["points"]["time"] == targets
