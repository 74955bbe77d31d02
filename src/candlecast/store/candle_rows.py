"""Candle rows: the exact-string row the store writes, its columns, and conversions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Text, cast

from candlecast.domain import Candle, format_decimal
from candlecast.store.tables import candles

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


ALL_COLUMNS = ("symbol", "interval", "open_time", *VALUE_NAMES, "source", "fetched_at")


DECIMAL_NAMES = frozenset(VALUE_NAMES) - {"close_time", "trades"}


NULLABLE_NAMES = ("quote_volume", "trades", "taker_buy_base", "taker_buy_quote")


SOURCES = frozenset({"rest", "ws", "archive", "file"})


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


def rows_from_candles(candles_in: Iterable[Candle]) -> list[CandleRow]:
    """Converts Candles into exact-string rows."""
    return [row_from_candle(candle) for candle in candles_in]


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


def exact_columns() -> list[ColumnElement[Any]]:
    """The value columns as the exchange's strings (NUMERIC::text keeps the scale)."""
    return [
        cast(candles.c[name], Text) if name in DECIMAL_NAMES else candles.c[name]
        for name in VALUE_NAMES
    ]


def pair_conditions(symbol: str, interval: str) -> list[ColumnElement[bool]]:
    """The WHERE conditions selecting one symbol and interval."""
    return [candles.c.symbol == symbol, candles.c.interval == interval]


def window_conditions(start: int | None, end: int | None) -> list[ColumnElement[bool]]:
    """The WHERE conditions for open_time in [start, end]; either bound may be open."""
    conditions: list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(candles.c.open_time >= start)
    if end is not None:
        conditions.append(candles.c.open_time <= end)
    return conditions
