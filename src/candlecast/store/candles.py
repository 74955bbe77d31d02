"""Candles: idempotent bulk upserts that count repairs, range reads, gaps and summaries."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Connection, Float, Text, and_, cast, func, select
from sqlalchemy.exc import IntegrityError

from candlecast.domain import Candle, format_decimal, interval_ms
from candlecast.store.tables import candles

log = logging.getLogger(__name__)

# open_time, open, high, low, close, volume, close_time, quote_volume, trades,
# taker_buy_base, taker_buy_quote: the exchange's own strings, so nothing is rounded.
CandleRow = tuple[int, str, str, str, str, str, int, str | None, int | None, str | None, str | None]

VALUE_NAMES = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
)
_ALL_COLUMNS = ("symbol", "interval", "open_time", *VALUE_NAMES, "source", "fetched_at")
_DECIMAL_NAMES = frozenset(VALUE_NAMES) - {"close_time", "trades"}
_NULLABLE_NAMES = ("quote_volume", "trades", "taker_buy_base", "taker_buy_quote")
SOURCES = frozenset({"rest", "ws", "archive", "file"})
# How many repaired candles a write result lists by name; the count is always complete.
_REPAIR_SAMPLE = 50


@dataclass
class WriteResult:
    """What one bulk write did. `repaired` rows had stored values that the exchange disagrees
    with; `enriched` rows gained fields (e.g. taker volumes) the stored copy lacked."""

    received: int = 0
    inserted: int = 0
    repaired: int = 0
    enriched: int = 0
    unchanged: int = 0
    repaired_sample: list[dict[str, object]] = field(default_factory=list)

    def add(self, other: WriteResult) -> None:
        """Adds another result's counts to this one."""
        self.received += other.received
        self.inserted += other.inserted
        self.repaired += other.repaired
        self.enriched += other.enriched
        self.unchanged += other.unchanged
        room = _REPAIR_SAMPLE - len(self.repaired_sample)
        self.repaired_sample.extend(other.repaired_sample[: max(room, 0)])


@dataclass(frozen=True)
class Gap:
    """A run of missing candles: first and last missing open_time, inclusive."""

    first_open_time: int
    last_open_time: int
    missing: int


@dataclass(frozen=True)
class PairSummary:
    """What is stored for one symbol and interval."""

    symbol: str
    interval: str
    first_open_time: int
    last_open_time: int
    count: int
    gaps: int
    missing: int


def row_from_candle(candle: Candle) -> CandleRow:
    """Converts a Candle into the exact-string row the store writes."""
    return (
        candle.open_time,
        format_decimal(candle.open),
        format_decimal(candle.high),
        format_decimal(candle.low),
        format_decimal(candle.close),
        format_decimal(candle.volume),
        candle.close_time,
        None if candle.quote_volume is None else format_decimal(candle.quote_volume),
        candle.trades,
        None if candle.taker_buy_base is None else format_decimal(candle.taker_buy_base),
        None if candle.taker_buy_quote is None else format_decimal(candle.taker_buy_quote),
    )


def candle_from_row(symbol: str, interval: str, row: Sequence[object]) -> Candle:
    """Converts an exact-string row (as read by `iter_rows`) into a Candle."""

    def dec(value: object) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    return Candle(
        symbol=symbol,
        interval=interval,
        open_time=int(str(row[0])),
        open=Decimal(str(row[1])),
        high=Decimal(str(row[2])),
        low=Decimal(str(row[3])),
        close=Decimal(str(row[4])),
        volume=Decimal(str(row[5])),
        close_time=int(str(row[6])),
        quote_volume=dec(row[7]),
        trades=None if row[8] is None else int(str(row[8])),
        taker_buy_base=dec(row[9]),
        taker_buy_quote=dec(row[10]),
    )


def _same_value(stored: object, incoming: object) -> bool:
    if stored == incoming:
        return True
    try:
        return Decimal(str(stored)) == Decimal(str(incoming))
    except InvalidOperation:
        return False


def _exact_columns() -> list[ColumnElement[Any]]:
    """The value columns as the exchange's strings (NUMERIC::text keeps the scale)."""
    return [
        cast(candles.c[name], Text) if name in _DECIMAL_NAMES else candles.c[name]
        for name in VALUE_NAMES
    ]


def _stored_rows(
    connection: Connection, symbol: str, interval: str, first: int, last: int
) -> dict[int, tuple[object, ...]]:
    query = select(candles.c.open_time, *_exact_columns()).where(
        candles.c.symbol == symbol,
        candles.c.interval == interval,
        candles.c.open_time.between(first, last),
    )
    return {int(row[0]): tuple(row[1:]) for row in connection.execute(query)}


def upsert_candles(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    rows: Sequence[CandleRow],
    source: str,
    fetched_at: int,
) -> WriteResult:
    """Writes closed candles in bulk: new ones are inserted, differing ones repaired."""
    if source not in SOURCES:
        raise ValueError(f"unknown candle source {source!r}; expected one of {sorted(SOURCES)}")
    result = WriteResult(received=len(rows))
    if not rows:
        return result
    first = min(row[0] for row in rows)
    last = max(row[0] for row in rows)
    stored = _stored_rows(connection, symbol, interval, first, last)
    to_write: list[CandleRow] = []
    for row in rows:
        old = stored.get(row[0])
        if old is None:
            result.inserted += 1
            to_write.append(row)
            continue
        changed: dict[str, list[object]] = {}
        enriched = False
        for name, old_value, new_value in zip(VALUE_NAMES, old, row[1:], strict=True):
            if new_value is None or _same_value(old_value, new_value):
                continue
            if old_value is None:
                enriched = True
            else:
                changed[name] = [str(old_value), str(new_value)]
        if changed:
            result.repaired += 1
            if len(result.repaired_sample) < _REPAIR_SAMPLE:
                result.repaired_sample.append({"open_time": row[0], "changed": changed})
            log.info("repaired %s %s candle %d: %s", symbol, interval, row[0], changed)
        elif enriched:
            result.enriched += 1
        else:
            result.unchanged += 1
            continue
        to_write.append(row)
    if to_write:
        if connection.dialect.name == "postgresql":
            copied = not stored and _copy_new_postgresql(
                connection, symbol, interval, to_write, source, fetched_at
            )
            if not copied:
                _write_postgresql(connection, symbol, interval, to_write, source, fetched_at)
        else:
            _write_sqlite(connection, symbol, interval, to_write, source, fetched_at)
    if result.repaired:
        log.warning(
            "repaired %d stored %s %s candle(s) that differed from %s",
            result.repaired,
            symbol,
            interval,
            source,
        )
    return result


def _conflict_updates(excluded: str) -> str:
    parts = []
    for name in (*VALUE_NAMES, "source", "fetched_at"):
        if name in _NULLABLE_NAMES:
            parts.append(f'"{name}" = COALESCE({excluded}."{name}", candles."{name}")')
        else:
            parts.append(f'"{name}" = {excluded}."{name}"')
    return ", ".join(parts)


def _write_sqlite(
    connection: Connection,
    symbol: str,
    interval: str,
    rows: Sequence[CandleRow],
    source: str,
    fetched_at: int,
) -> None:
    columns = ", ".join(f'"{name}"' for name in _ALL_COLUMNS)
    marks = ", ".join("?" for _ in _ALL_COLUMNS)
    statement = (
        f"INSERT INTO candles ({columns}) VALUES ({marks}) "
        f'ON CONFLICT ("symbol", "interval", "open_time") DO UPDATE SET '
        f"{_conflict_updates('excluded')}"
    )
    params = [(symbol, interval, *row, source, fetched_at) for row in rows]
    connection.exec_driver_sql(statement, params)


def _copy_rows(connection: Connection, table: str, rows: Iterable[tuple[object, ...]]) -> None:
    columns = ", ".join(f'"{name}"' for name in _ALL_COLUMNS)
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


def _copy_new_postgresql(
    connection: Connection,
    symbol: str,
    interval: str,
    rows: Sequence[CandleRow],
    source: str,
    fetched_at: int,
) -> bool:
    """COPYs rows straight into candles when none of them can exist yet; False on a race."""
    savepoint = connection.begin_nested()
    try:
        _copy_rows(
            connection, "candles", ((symbol, interval, *r, source, fetched_at) for r in rows)
        )
    except IntegrityError:
        # Another writer stored some of these candles meanwhile: take the upsert path.
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def _write_postgresql(
    connection: Connection,
    symbol: str,
    interval: str,
    rows: Sequence[CandleRow],
    source: str,
    fetched_at: int,
) -> None:
    # COPY into a session-local staging table, then one set-based upsert: far faster than
    # multi-row INSERTs, and still atomic with the caller's transaction.
    columns = ", ".join(f'"{name}"' for name in _ALL_COLUMNS)
    connection.exec_driver_sql(
        "CREATE TEMP TABLE IF NOT EXISTS candles_stage "
        "(LIKE candles INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    _copy_rows(
        connection, "candles_stage", ((symbol, interval, *r, source, fetched_at) for r in rows)
    )
    connection.exec_driver_sql(
        f"INSERT INTO candles ({columns}) SELECT {columns} FROM candles_stage "
        f'ON CONFLICT ("symbol", "interval", "open_time") DO UPDATE SET '
        f"{_conflict_updates('EXCLUDED')}"
    )
    connection.exec_driver_sql("TRUNCATE candles_stage")


def _pair(symbol: str, interval: str) -> list[ColumnElement[bool]]:
    return [candles.c.symbol == symbol, candles.c.interval == interval]


def _window(start: int | None, end: int | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(candles.c.open_time >= start)
    if end is not None:
        conditions.append(candles.c.open_time <= end)
    return conditions


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
        select(candles.c.open_time, *_exact_columns())
        .where(*_pair(symbol, interval), *_window(start, end))
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
    """Reads candles as float64 columns for modelling (open_time stays int64 ms)."""
    columns = [candles.c.open_time] + [
        cast(candles.c[name], Float).label(name) for name in FRAME_COLUMNS[1:]
    ]
    query = (
        select(*columns)
        .where(*_pair(symbol, interval), *_window(start, end))
        .order_by(candles.c.open_time)
    )
    fetched = connection.execute(query).all()
    frame = pd.DataFrame(fetched, columns=list(FRAME_COLUMNS))
    frame["open_time"] = frame["open_time"].astype(np.int64)
    for name in FRAME_COLUMNS[1:]:
        frame[name] = frame[name].astype(np.float64)
    return frame


def bounds(connection: Connection, *, symbol: str, interval: str) -> tuple[int, int, int] | None:
    """(first open_time, last open_time, count) of stored candles, or None if there are none."""
    query = select(
        func.min(candles.c.open_time), func.max(candles.c.open_time), func.count()
    ).where(*_pair(symbol, interval))
    first, last, count = connection.execute(query).one()
    if first is None:
        return None
    return int(first), int(last), int(count)


def last_open_time(connection: Connection, *, symbol: str, interval: str) -> int | None:
    """The open_time of the newest stored candle, or None."""
    query = select(func.max(candles.c.open_time)).where(*_pair(symbol, interval))
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
    query = select(func.count()).where(*_pair(symbol, interval), *_window(start, end))
    return int(connection.execute(query).scalar_one())


def find_gaps(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> list[Gap]:
    """Runs of missing candles between stored ones in [start, end] (not before the first)."""
    step = interval_ms(interval)
    inner = (
        select(
            candles.c.open_time.label("open_time"),
            func.lag(candles.c.open_time).over(order_by=candles.c.open_time).label("previous"),
        )
        .where(*_pair(symbol, interval), *_window(start, end))
        .subquery()
    )
    query = (
        select(inner.c.previous, inner.c.open_time)
        .where(and_(inner.c.previous.is_not(None), inner.c.open_time - inner.c.previous > step))
        .order_by(inner.c.open_time)
    )
    return [
        Gap(int(previous) + step, int(current) - step, (int(current) - int(previous)) // step - 1)
        for previous, current in connection.execute(query)
    ]


def missing_ranges(
    connection: Connection, *, symbol: str, interval: str, first: int, last: int
) -> list[tuple[int, int]]:
    """Open-time ranges [a, b] inside [first, last] with no stored candle, in order."""
    step = interval_ms(interval)
    if last < first:
        return []
    window = bounds_in(connection, symbol=symbol, interval=interval, start=first, end=last)
    if window is None:
        return [(first, last)]
    lowest, highest = window
    ranges: list[tuple[int, int]] = []
    if lowest > first:
        ranges.append((first, lowest - step))
    ranges.extend(
        (gap.first_open_time, gap.last_open_time)
        for gap in find_gaps(connection, symbol=symbol, interval=interval, start=first, end=last)
    )
    if highest < last:
        ranges.append((highest + step, last))
    return ranges


def bounds_in(
    connection: Connection, *, symbol: str, interval: str, start: int, end: int
) -> tuple[int, int] | None:
    """(lowest, highest) stored open_time within [start, end], or None."""
    query = select(func.min(candles.c.open_time), func.max(candles.c.open_time)).where(
        *_pair(symbol, interval),
        *_window(start, end),
    )
    lowest, highest = connection.execute(query).one()
    return None if lowest is None else (int(lowest), int(highest))


def summaries(connection: Connection) -> list[PairSummary]:
    """What is stored per symbol and interval, with gap counts."""
    query = (
        select(
            candles.c.symbol,
            candles.c.interval,
            func.min(candles.c.open_time),
            func.max(candles.c.open_time),
            func.count(),
        )
        .group_by(candles.c.symbol, candles.c.interval)
        .order_by(candles.c.symbol, candles.c.interval)
    )
    found: list[PairSummary] = []
    for symbol, interval, first, last, count in connection.execute(query).all():
        gaps = find_gaps(connection, symbol=symbol, interval=interval)
        found.append(
            PairSummary(
                symbol=symbol,
                interval=interval,
                first_open_time=int(first),
                last_open_time=int(last),
                count=int(count),
                gaps=len(gaps),
                missing=sum(gap.missing for gap in gaps),
            )
        )
    return found


def delete_pair(connection: Connection, *, symbol: str, interval: str) -> int:
    """Deletes every stored candle of one pair; returns how many went."""
    result = connection.execute(candles.delete().where(*_pair(symbol, interval)))
    return int(result.rowcount)


def rows_from_candles(candles_in: Iterable[Candle]) -> list[CandleRow]:
    """Converts Candles into exact-string rows."""
    return [row_from_candle(candle) for candle in candles_in]


def fetch_matrix(connection: Connection, sql: str, params: dict[str, Any]) -> np.ndarray:
    """Runs a numeric query on the raw DB-API cursor and returns a float64 matrix (NULL: NaN).

    Skips SQLAlchemy's row objects: for the API's 26k-row chart reads they cost more than the
    query. `sql` uses %(name)s placeholders; FLOAT8 is written as the dialect's double type.
    """
    if connection.dialect.name == "sqlite":
        sql = re.sub(r"%\((\w+)\)s", r":\1", sql).replace("FLOAT8", "REAL")
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
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
) -> dict[str, np.ndarray]:
    """Candles in [start, end] as ascending float64 columns (open_time as int64 ms).

    Cast in SQL, so no Decimal is ever built: this is the read behind the API's charts.
    """
    for name in names:
        if name not in _DECIMAL_NAMES:
            raise ValueError(f"not a price or volume column: {name}")
    values = ", ".join(f'CAST("{name}" AS FLOAT8)' for name in names)
    matrix = fetch_matrix(
        connection,
        f'SELECT open_time, {values} FROM candles WHERE "symbol" = %(symbol)s '
        'AND "interval" = %(interval)s AND open_time BETWEEN %(start)s AND %(end)s '
        "ORDER BY open_time",
        {"symbol": symbol, "interval": interval, "start": start, "end": end},
    )
    if matrix.size == 0:
        return {"open_time": np.empty(0, dtype=np.int64)} | {
            name: np.empty(0, dtype=np.float64) for name in names
        }
    out = {"open_time": matrix[:, 0].astype(np.int64)}
    out.update({name: matrix[:, i + 1] for i, name in enumerate(names)})
    return out
