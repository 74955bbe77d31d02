"""Materialized model predictions: each model's forecast made at candle t for t+1.

Written in bulk once per model (after training) and then incrementally per new candle, never
rewritten; read as plain float columns so /api/series never recomputes a model per request.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, func, select

from candlecast.store.candle_reads import fetch_matrix, time_columns
from candlecast.store.tables import PREDICTION_VALUE_COLUMNS, candles, model_predictions

_ALL_COLUMNS = ("model_id", "open_time", "symbol", "interval", *PREDICTION_VALUE_COLUMNS)
# Above this many rows PostgreSQL takes the COPY path; below it one executemany is cheaper.
_COPY_THRESHOLD = 500
Row = tuple[object, ...]


def _rows(model_id: int, symbol: str, interval: str, frame: pd.DataFrame) -> list[Row]:
    """Rows in _ALL_COLUMNS order; NaN becomes NULL so JSON never meets a NaN."""
    times = frame["open_time"].to_numpy(dtype=np.int64).tolist()
    values = frame[list(PREDICTION_VALUE_COLUMNS)].to_numpy(dtype=np.float64)
    cells = values.astype(object)
    cells[~np.isfinite(values)] = None
    return [
        (model_id, open_time, symbol, interval, *row)
        for open_time, row in zip(times, cells.tolist(), strict=True)
    ]


def write(
    connection: Connection, *, model_id: int, symbol: str, interval: str, frame: pd.DataFrame
) -> int:
    """Stores predictions (bundle.predict columns) for open_times not yet stored; returns rows."""
    if frame.empty:
        return 0
    rows = _rows(model_id, symbol, interval, frame)
    columns = ", ".join(f'"{name}"' for name in _ALL_COLUMNS)
    if connection.dialect.name == "postgresql" and len(rows) > _COPY_THRESHOLD:
        _copy_postgresql(connection, rows, columns)
        return len(rows)
    marks = ", ".join(
        ["%s" if connection.dialect.name == "postgresql" else "?"] * len(_ALL_COLUMNS)
    )
    connection.exec_driver_sql(
        f"INSERT INTO model_predictions ({columns}) VALUES ({marks}) "
        'ON CONFLICT ("model_id", "open_time") DO NOTHING',
        rows,
    )
    return len(rows)


def _copy_postgresql(connection: Connection, rows: Sequence[Row], columns: str) -> None:
    # COPY into a session-local stage, then one set-based insert that skips stored rows.
    connection.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS model_predictions_stage "
        "(LIKE model_predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    raw = connection.connection.driver_connection
    statement = f"COPY model_predictions_stage ({columns}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)
    connection.exec_driver_sql(
        f"INSERT INTO model_predictions ({columns}) SELECT {columns} "
        'FROM model_predictions_stage ON CONFLICT ("model_id", "open_time") DO NOTHING'
    )
    connection.exec_driver_sql("TRUNCATE model_predictions_stage")


def last_open_time(connection: Connection, *, model_id: int) -> int | None:
    """The newest open_time with a stored prediction of this model, or None."""
    value = connection.execute(
        select(func.max(model_predictions.c.open_time)).where(
            model_predictions.c.model_id == model_id
        )
    ).scalar()
    return None if value is None else int(value)


def count(connection: Connection, *, model_id: int) -> int:
    """How many predictions of this model are stored."""
    query = select(func.count()).where(model_predictions.c.model_id == model_id)
    return int(connection.execute(query).scalar_one())


def read_columns(
    connection: Connection,
    *,
    model_id: int,
    start: int,
    end: int,
    columns: Sequence[str] = PREDICTION_VALUE_COLUMNS,
) -> dict[str, np.ndarray]:
    """Stored predictions with open_time in [start, end] as ascending float64 columns (NaN:
    NULL), open_time as int64."""
    for name in columns:
        if name not in PREDICTION_VALUE_COLUMNS:
            raise ValueError(f"not a prediction column: {name}")
    selected = ", ".join(f'"{name}"' for name in columns)
    matrix = fetch_matrix(
        connection,
        f"SELECT open_time, {selected} FROM model_predictions WHERE model_id = %(model_id)s "
        "AND open_time BETWEEN %(start)s AND %(end)s ORDER BY open_time",
        {"model_id": model_id, "start": start, "end": end},
    )
    return time_columns(matrix, columns)


def unpredicted(
    connection: Connection, *, model_id: int, symbol: str, interval: str, start: int, end: int
) -> list[int]:
    """Open times of stored candles in [start, end] with no prediction of the model (e.g. a gap
    filled after the model materialized its predictions)."""
    joined = candles.outerjoin(
        model_predictions,
        and_(
            model_predictions.c.model_id == model_id,
            model_predictions.c.open_time == candles.c.open_time,
        ),
    )
    query = (
        select(candles.c.open_time)
        .select_from(joined)
        .where(
            candles.c.symbol == symbol,
            candles.c.interval == interval,
            candles.c.open_time.between(start, end),
            model_predictions.c.open_time.is_(None),
        )
        .order_by(candles.c.open_time)
    )
    return [int(value) for value in connection.execute(query).scalars()]
