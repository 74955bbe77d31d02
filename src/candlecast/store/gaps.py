"""Coverage: what is stored (bounds, gaps, per-pair summaries) and the known gaps, runs of
candles the exchange itself does not have (e.g. real outages)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, select, update

from candlecast.domain import interval_ms
from candlecast.store.candle_rows import pair_conditions, window_conditions
from candlecast.store.tables import candles, known_gaps


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
        .where(*pair_conditions(symbol, interval), *window_conditions(start, end))
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
        *pair_conditions(symbol, interval),
        *window_conditions(start, end),
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


def record_unfillable(
    connection: Connection, *, symbol: str, interval: str, gap: Gap, checked_at: int
) -> None:
    """Records (or re-confirms) a gap that the exchange could not fill."""
    where = (
        known_gaps.c.symbol == symbol,
        known_gaps.c.interval == interval,
        known_gaps.c.first_open_time == gap.first_open_time,
    )
    existing = connection.execute(select(known_gaps.c.id).where(*where)).first()
    if existing is None:
        connection.execute(
            known_gaps.insert().values(
                symbol=symbol,
                interval=interval,
                first_open_time=gap.first_open_time,
                last_open_time=gap.last_open_time,
                detected_at=checked_at,
                checked_at=checked_at,
            )
        )
    else:
        connection.execute(
            update(known_gaps)
            .where(*where)
            .values(last_open_time=gap.last_open_time, checked_at=checked_at)
        )


def list_unfillable(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> list[Gap]:
    """Known unfillable gaps that overlap [start, end]."""
    query = (
        select(known_gaps.c.first_open_time, known_gaps.c.last_open_time)
        .where(known_gaps.c.symbol == symbol, known_gaps.c.interval == interval)
        .order_by(known_gaps.c.first_open_time)
    )
    if start is not None:
        query = query.where(known_gaps.c.last_open_time >= start)
    if end is not None:
        query = query.where(known_gaps.c.first_open_time <= end)
    step = interval_ms(interval)
    return [
        Gap(int(first), int(last), (int(last) - int(first)) // step + 1)
        for first, last in connection.execute(query)
    ]


def forget(connection: Connection, *, symbol: str, interval: str, first_open_time: int) -> None:
    """Forgets a known gap, e.g. once the exchange has filled it after all."""
    connection.execute(
        delete(known_gaps).where(
            known_gaps.c.symbol == symbol,
            known_gaps.c.interval == interval,
            known_gaps.c.first_open_time == first_open_time,
        )
    )
