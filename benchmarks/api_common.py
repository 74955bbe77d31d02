"""A database with 92 days of real 5m candles and a trained champion, for the API benchmarks."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import SHARED_DATA
from candlecast.domain import parse_iso_utc
from candlecast.jobs import import_file, modeling, pipeline
from candlecast.store import db
from candlecast.store.db import write_transaction
from candlecast.store.tables import candles

MAIN_CSV = SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv"
# The last candle the benchmark database holds: 92 days after the fixture's start and change.
LAST = parse_iso_utc("2025-10-01T00:00:00Z")


def prepare(url: str, *, train_days: int = 90) -> dict[str, float]:
    """Imports the fixture up to LAST, trains a (small, fast) champion, refreshes; timings."""
    engine = db.create_store_engine(url)
    db.upgrade(engine)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    import_file(engine, path=Path(MAIN_CSV), symbol="BTCUSDT", interval="5m")
    with write_transaction(engine) as connection:
        connection.execute(candles.delete().where(candles.c.open_time > LAST))
    timings["import_s"] = time.perf_counter() - started
    started = time.perf_counter()
    fast = {"n_estimators": 60, "classifier_estimators": 40}
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=train_days, params=fast)
    timings["train_and_materialize_s"] = time.perf_counter() - started
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    engine.dispose()
    return timings
