"""Candle reads: exact-string rows, Candle objects, and float frames/columns for models."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from candlecast.domain import Candle
from candlecast.store.candle_rows import (
    DECIMAL_NAMES,
    VALUE_NAMES,
    candle_from_row,
    exact_columns,
    pair_conditions,
    window_conditions,
)
from candlecast.store.tables import candles

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def iter_rows(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
    limit: int | None = None,
    descending: bool = False,
    batch_size: int = 20_000,
) -> Iterator[tuple[object, ...]]:
    """Streams stored candles as exact-string rows in open_time order; start/end inclusive."""
    order = candles.c.open_time.desc() if descending else candles.c.open_time.asc()
    query = (
        select(candles.c.open_time, *exact_columns())
        .where(*pair_conditions(symbol, interval), *window_conditions(start, end))
        .order_by(order)
    )
    if limit is not None:
        query = query.limit(limit)
    result = connection.execution_options(yield_per=batch_size).execute(query)
    for row in result:
        yield tuple(row)


def read_candles(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
    limit: int | None = None,
) -> list[Candle]:
    """Reads stored candles as Candle objects, ascending; start/end inclusive."""
    return [
        candle_from_row(symbol, interval, row)
        for row in iter_rows(
            connection, symbol=symbol, interval=interval, start=start, end=end, limit=limit
        )
    ]


FRAME_COLUMNS = ("open_time", *(name for name in VALUE_NAMES if name != "close_time"))


def read_frame(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> pd.DataFrame:
    """Reads candles as float64 columns for modelling (open_time stays int64 ms).

    Through fetch_matrix: for a 90-day training window, SQLAlchemy's row objects cost more
    than the query itself.
    """
    # Imported here: the sync jobs and the CLI read this module without needing pandas.
    import numpy as np
    import pandas as pd

    names = FRAME_COLUMNS[1:]
    values = ", ".join(f'CAST("{name}" AS FLOAT8)' for name in names)
    bounds = "".join(
        condition
        for condition, bound in (
            ("AND open_time >= %(start)s ", start),
            ("AND open_time <= %(end)s ", end),
        )
        if bound is not None
    )
    matrix = fetch_matrix(
        connection,
        f'SELECT open_time, {values} FROM candles WHERE "symbol" = %(symbol)s '
        f'AND "interval" = %(interval)s {bounds}ORDER BY open_time',
        {"symbol": symbol, "interval": interval, "start": start, "end": end},
    )
    columns = time_columns(matrix, names)
    frame = pd.DataFrame(columns, columns=list(FRAME_COLUMNS))
    frame["open_time"] = frame["open_time"].astype(np.int64)
    return frame


def bounds(connection: Connection, *, symbol: str, interval: str) -> tuple[int, int, int] | None:
    """(first open_time, last open_time, count) of stored candles, or None if there are none."""
    query = select(
        func.min(candles.c.open_time), func.max(candles.c.open_time), func.count()
    ).where(*pair_conditions(symbol, interval))
    first, last, count = connection.execute(query).one()
    if first is None:
        return None
    return int(first), int(last), int(count)


def last_open_time(connection: Connection, *, symbol: str, interval: str) -> int | None:
    """The open_time of the newest stored candle, or None."""
    query = select(func.max(candles.c.open_time)).where(*pair_conditions(symbol, interval))
    value = connection.execute(query).scalar()
    return None if value is None else int(value)


def count_candles(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> int:
    """How many candles are stored in [start, end]."""
    query = select(func.count()).where(
        *pair_conditions(symbol, interval), *window_conditions(start, end)
    )
    return int(connection.execute(query).scalar_one())


def time_columns(matrix: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Splits an (open_time, *names) matrix from fetch_matrix into named columns."""
    import numpy as np

    if matrix.size == 0:
        return {"open_time": np.empty(0, dtype=np.int64)} | {
            name: np.empty(0, dtype=np.float64) for name in names
        }
    out = {"open_time": matrix[:, 0].astype(np.int64)}
    out.update({name: matrix[:, i + 1] for i, name in enumerate(names)})
    return out


def fetch_matrix(connection: Connection, sql: str, params: dict[str, Any]) -> np.ndarray:
    """Runs a numeric query on the raw DB-API cursor and returns a float64 matrix (NULL: NaN).

    Skips SQLAlchemy's row objects: for the API's 26k-row chart reads they cost more than the
    query. `sql` uses %(name)s placeholders; FLOAT8 is written as the dialect's double type.
    """
    import numpy as np

    raw = connection.connection.dbapi_connection
    if connection.dialect.name == "sqlite":
        sql = re.sub(r"%\((\w+)\)s", r":\1", sql).replace("FLOAT8", "REAL")
        cursor = raw.cursor()  # type: ignore[union-attr]
    else:
        # psycopg's binary format: float8 and int8 arrive without text parsing.
        cursor = raw.cursor(binary=True)  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return np.empty((0, 0), dtype=np.float64)
    return np.array(rows, dtype=np.float64)


def read_columns(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int,
    end: int,
    names: Sequence[str] = ("open", "high", "low", "close", "volume"),
    written_since: int | None = None,
) -> dict[str, np.ndarray]:
    """Candles in [start, end] as ascending float64 columns (open_time as int64 ms); with
    `written_since`, only rows written (inserted or repaired) at or after that time.

    Cast in SQL, so no Decimal is ever built: this is the read behind the API's charts.
    """
    for name in names:
        if name not in DECIMAL_NAMES:
            raise ValueError(f"not a price or volume column: {name}")
    values = ", ".join(f'CAST("{name}" AS FLOAT8)' for name in names)
    matrix = fetch_matrix(
        connection,
        f'SELECT open_time, {values} FROM candles WHERE "symbol" = %(symbol)s '
        'AND "interval" = %(interval)s AND open_time BETWEEN %(start)s AND %(end)s '
        + ("AND fetched_at >= %(since)s " if written_since is not None else "")
        + "ORDER BY open_time",
        {
            "symbol": symbol,
            "interval": interval,
            "start": start,
            "end": end,
            "since": written_since,
        },
    )
    return time_columns(matrix, names)


def last_write(connection: Connection, *, symbol: str, interval: str, start: int) -> int | None:
    """When candles with open_time >= start were last written (inserted or repaired), or None.

    Every write stamps fetched_at, so this changes whenever anything in that range changes.
    """
    query = select(func.max(candles.c.fetched_at)).where(
        *pair_conditions(symbol, interval), candles.c.open_time >= start
    )
    value = connection.execute(query).scalar()
    return None if value is None else int(value)
