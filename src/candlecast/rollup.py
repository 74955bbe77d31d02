"""Rolling candles up to a longer interval (e.g. 1m to 5m), exactly and without inventing any."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

from candlecast.domain import Candle, ConfigError, close_time_of, interval_ms


def _sum_or_none(values: list[Decimal | None]) -> Decimal | None:
    if any(value is None for value in values):
        return None
    return sum((value for value in values if value is not None), Decimal(0))


def _combine(group: list[Candle], interval: str, open_time: int) -> Candle:
    trades = [c.trades for c in group]
    return Candle(
        symbol=group[0].symbol,
        interval=interval,
        open_time=open_time,
        open=group[0].open,
        high=max(c.high for c in group),
        low=min(c.low for c in group),
        close=group[-1].close,
        volume=sum((c.volume for c in group), Decimal(0)),
        close_time=close_time_of(open_time, interval),
        quote_volume=_sum_or_none([c.quote_volume for c in group]),
        trades=None if any(t is None for t in trades) else sum(t for t in trades if t is not None),
        taker_buy_base=_sum_or_none([c.taker_buy_base for c in group]),
        taker_buy_quote=_sum_or_none([c.taker_buy_quote for c in group]),
    )


def roll_up(candles: Iterable[Candle], interval: str) -> Iterator[Candle]:
    """Combines ascending candles into `interval` candles; incomplete groups are skipped."""
    target = interval_ms(interval)
    group: list[Candle] = []
    group_open: int | None = None
    per_group = 0
    for candle in candles:
        source = interval_ms(candle.interval)
        if target % source or target <= source:
            raise ConfigError(f"cannot roll {candle.interval} candles up to {interval}")
        per_group = target // source
        bucket = candle.open_time - candle.open_time % target
        if bucket != group_open:
            if group_open is not None and len(group) == per_group:
                yield _combine(group, interval, group_open)
            group, group_open = [], bucket
        group.append(candle)
    if group_open is not None and len(group) == per_group:
        yield _combine(group, interval, group_open)
