"""Horizon forecasts: the close and the range over the next `horizon` candles, written once
before the first of those candles closes, then scored when all of them are stored.

As in the ledger, a forecast's values are never updated: scoring fills only the realized
columns, once, from the candles in the store (the single source of truth), and only when
every candle t+1 .. t+horizon is there; a gap leaves the forecast unscored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from candlecast.store.tables import candles, horizon_forecasts


@dataclass(frozen=True, slots=True)
class HorizonEntry:
    """What the store records for one (pair, horizon, origin candle)."""

    model_id: int
    symbol: str
    interval: str
    horizon: int
    origin_open_time: int
    end_open_time: int
    made_at: int
    made_at_exchange: int | None
    last_close: float
    close_quantiles: dict[str, float]
    range: float
    range_quantiles: dict[str, float]
    persistence_range: float | None
    random_walk_range: float | None
    har_range: float | None


def record(connection: Connection, *, entry: HorizonEntry, first_close_time: int) -> bool:
    """Writes a horizon forecast unless its first candle (t+1) is stored or had closed when it
    was made, or the origin is forecast already for that horizon. Returns False when refused.

    `first_close_time` is the close time of candle t+1: a forecast made at the exchange after
    it has seen part of what it forecasts, and is not honest."""
    if entry.made_at_exchange is not None and entry.made_at_exchange > first_close_time:
        return False
    step = entry.end_open_time - entry.origin_open_time
    if entry.horizon <= 0 or step <= 0 or step % entry.horizon:
        raise ValueError(f"inconsistent horizon forecast: {entry}")
    first_stored = connection.execute(
        select(func.count())
        .select_from(candles)
        .where(
            candles.c.symbol == entry.symbol,
            candles.c.interval == entry.interval,
            candles.c.open_time > entry.origin_open_time,
            candles.c.open_time <= entry.end_open_time,
        )
    ).scalar_one()
    if first_stored:
        return False
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql as dialect
    else:
        from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
    # The unique key (pair, horizon, origin) decides "already forecast": a racing second writer
    # waits for the first's commit, then skips. RETURNING says whether the row went in.
    statement = (
        dialect.insert(horizon_forecasts)
        .values(**asdict(entry))
        .on_conflict_do_nothing()
        .returning(horizon_forecasts.c.id)
    )
    return connection.execute(statement).first() is not None


def score(connection: Connection, *, symbol: str, interval: str, scored_at: int) -> int:
    """Fills the realized close and range of every forecast whose candles are all stored now;
    returns how many were scored."""
    newest = connection.execute(
        select(func.max(candles.c.open_time)).where(
            candles.c.symbol == symbol, candles.c.interval == interval
        )
    ).scalar_one_or_none()
    if newest is None:
        return 0
    pending = connection.execute(
        select(
            horizon_forecasts.c.id,
            horizon_forecasts.c.horizon,
            horizon_forecasts.c.origin_open_time,
            horizon_forecasts.c.end_open_time,
        )
        .where(
            horizon_forecasts.c.symbol == symbol,
            horizon_forecasts.c.interval == interval,
            horizon_forecasts.c.scored_at.is_(None),
            horizon_forecasts.c.end_open_time <= newest,
        )
        .order_by(horizon_forecasts.c.end_open_time)
    ).all()
    scored = 0
    for row in pending:
        realized = _realized(
            connection,
            symbol=symbol,
            interval=interval,
            origin=int(row.origin_open_time),
            end=int(row.end_open_time),
            horizon=int(row.horizon),
        )
        if realized is None:
            continue
        real_close, real_range = realized
        result = connection.execute(
            update(horizon_forecasts)
            .where(horizon_forecasts.c.id == row.id, horizon_forecasts.c.scored_at.is_(None))
            .values(real_close=real_close, real_range=real_range, scored_at=scored_at)
        )
        scored += result.rowcount
    return scored


def _realized(
    connection: Connection, *, symbol: str, interval: str, origin: int, end: int, horizon: int
) -> tuple[Decimal, Decimal] | None:
    """(close of the end candle, max high - min low over origin+1 .. end), exactly, or None
    while any of those candles is missing."""
    rows = connection.execute(
        select(candles.c.open_time, candles.c.high, candles.c.low, candles.c.close)
        .where(
            candles.c.symbol == symbol,
            candles.c.interval == interval,
            candles.c.open_time > origin,
            candles.c.open_time <= end,
        )
        .order_by(candles.c.open_time)
    ).all()
    # Highs and lows are compared as decimals here: SQLite stores them as text, where MAX()
    # would compare strings.
    if len(rows) != horizon or int(rows[-1].open_time) != end:
        return None
    highest = max(Decimal(row.high) for row in rows)
    lowest = min(Decimal(row.low) for row in rows)
    return Decimal(rows[-1].close), highest - lowest


def latest(connection: Connection, *, symbol: str, interval: str) -> list[dict[str, Any]]:
    """The newest forecast of each horizon of the pair, by horizon, as plain dicts."""
    newest = (
        select(
            horizon_forecasts.c.horizon,
            func.max(horizon_forecasts.c.origin_open_time).label("origin"),
        )
        .where(horizon_forecasts.c.symbol == symbol, horizon_forecasts.c.interval == interval)
        .group_by(horizon_forecasts.c.horizon)
        .subquery()
    )
    rows = connection.execute(
        select(horizon_forecasts)
        .join(
            newest,
            (newest.c.horizon == horizon_forecasts.c.horizon)
            & (newest.c.origin == horizon_forecasts.c.origin_open_time),
        )
        .where(horizon_forecasts.c.symbol == symbol, horizon_forecasts.c.interval == interval)
        .order_by(horizon_forecasts.c.horizon)
    ).all()
    return [dict(row._mapping) for row in rows]


def newest_end(connection: Connection, *, symbol: str, interval: str) -> int | None:
    """The latest end_open_time of any horizon forecast of the pair."""
    value = connection.execute(
        select(func.max(horizon_forecasts.c.end_open_time)).where(
            horizon_forecasts.c.symbol == symbol, horizon_forecasts.c.interval == interval
        )
    ).scalar_one_or_none()
    return None if value is None else int(value)


def window(
    connection: Connection, *, symbol: str, interval: str, start: int, end: int
) -> list[dict[str, Any]]:
    """Forecasts whose end candle opens in [start, end], by horizon then end time."""
    rows = connection.execute(
        select(horizon_forecasts)
        .where(
            horizon_forecasts.c.symbol == symbol,
            horizon_forecasts.c.interval == interval,
            horizon_forecasts.c.end_open_time >= start,
            horizon_forecasts.c.end_open_time <= end,
        )
        .order_by(horizon_forecasts.c.horizon, horizon_forecasts.c.end_open_time)
    ).all()
    return [dict(row._mapping) for row in rows]
