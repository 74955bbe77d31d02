"""The in-memory series columns stay equal to a fresh read through new candles, repairs,
filled gaps and new predictions, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from candlecast.api.series import RawColumns, read_raw
from candlecast.api.series_cache import TrailingColumns
from candlecast.store import candles, predictions
from candlecast.store.candle_rows import CandleRow
from candlecast.store.db import write_transaction
from candlecast.store.tables import PREDICTION_VALUE_COLUMNS

STEP = 300_000
T0 = 1_750_000_200_000 - 1_750_000_200_000 % STEP
DAY = 86_400_000


def _row(i: int, close: float) -> CandleRow:
    t = T0 + i * STEP
    text = f"{close:.2f}"
    high, low = f"{close + 5:.2f}", f"{close - 5:.2f}"
    return (t, text, high, low, text, "1.5", t + STEP - 1, None, None, None, None)


def _write(engine: Engine, rows: list[CandleRow], fetched_at: int) -> None:
    with write_transaction(engine) as connection:
        candles.upsert_candles(
            connection,
            symbol="BTCUSDT",
            interval="5m",
            rows=rows,
            source="rest",
            fetched_at=fetched_at,
        )


def _predict(engine: Engine, indexes: list[int]) -> None:
    frame = pd.DataFrame({"open_time": [T0 + i * STEP for i in indexes]})
    for n, name in enumerate(PREDICTION_VALUE_COLUMNS):
        frame[name] = [float(i * 10 + n) for i in indexes]
    with write_transaction(engine) as connection:
        predictions.write(connection, model_id=1, symbol="BTCUSDT", interval="5m", frame=frame)


def _same(a: RawColumns, b: RawColumns) -> None:
    np.testing.assert_array_equal(a.times, b.times)
    for name in a.real:
        np.testing.assert_array_equal(a.real[name], b.real[name])
    for name in a.pred:
        np.testing.assert_array_equal(a.pred[name], b.pred[name])


def _check(engine: Engine, held: TrailingColumns, newest_index: int) -> None:
    newest = T0 + newest_index * STEP
    start, end = newest - DAY, newest
    with engine.connect() as connection:
        incremental = held.window(
            connection,
            symbol="BTCUSDT",
            interval="5m",
            model_id=1,
            newest=newest,
            start=start,
            end=end,
        )
        fresh = read_raw(
            connection, symbol="BTCUSDT", interval="5m", start=start, end=end, model_id=1
        )
    _same(incremental, fresh)


def test_columns_follow_new_candles_repairs_gaps_and_predictions(engine: Engine) -> None:
    held = TrailingColumns(span_ms=3 * DAY)
    stored = [i for i in range(600) if not 400 <= i < 410]  # a gap at 400..409
    _write(engine, [_row(i, 100_000 + i) for i in stored], fetched_at=1_000)
    _predict(engine, [i for i in stored if i < 590])
    _check(engine, held, 599)

    _write(engine, [_row(i, 100_000 + i) for i in (600, 601)], fetched_at=2_000)
    _predict(engine, [590, 591, 600])
    _check(engine, held, 601)

    _write(engine, [_row(450, 99_000.0)], fetched_at=3_000)  # a repair in the middle
    _check(engine, held, 601)

    _write(engine, [_row(i, 100_000 + i) for i in range(400, 410)], fetched_at=4_000)  # gap
    _predict(engine, list(range(400, 410)))
    _check(engine, held, 601)
