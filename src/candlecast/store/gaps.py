"""Known gaps: runs of candles the exchange itself does not have (e.g. real outages)."""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update

from candlecast.domain import interval_ms
from candlecast.store.candles import Gap
from candlecast.store.tables import known_gaps


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
