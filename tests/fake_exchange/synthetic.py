"""Many markets from one real file: real BTC candles from other dates, renamed and rescaled.

Synthetic market i keeps the base market's open_times (so every market covers the same virtual
window) but takes its values from the base rows `offset_i` candles later, wrapping around at the
end: a real price path from another date, with one seam where the wrap joins the last candle to
the first. Prices and quote volumes are multiplied by a per-market factor as exact decimals:
each value keeps its own number of decimals plus as many as the factor's magnitude removes, so
no significant digit is lost and `Decimal(base) * factor` rounds (half even) to the served value.
Base volumes and trade counts are the base row's. Rows are computed when read, so 200 markets
cost about nothing beyond the one shared base market.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import overload

from tests.fake_exchange.market import Market, Row, load_market


class Scaler:
    """Multiplies decimal strings by a factor, keeping each value's decimals plus the ones the
    factor's magnitude needs (a factor of 0.001 moves three digits behind the point).

    Equal to `format((Decimal(text) * factor).quantize(1E-n, ROUND_HALF_EVEN), "f")` for those
    n decimals, but in integers: rows are scaled on every read, and Decimal is much slower.
    A zero stays as written ("0" is Binance's empty value).
    """

    def __init__(self, factor: Decimal) -> None:
        sign, digits, exponent = factor.as_tuple()
        if not isinstance(exponent, int) or not any(digits):
            raise ValueError(f"factor {factor} is not a finite non-zero number")
        self.factor = factor
        self._mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
        self._exponent = exponent
        self._extra = max(0, -factor.adjusted())

    def __call__(self, text: str) -> str:
        whole, _, fraction = text.lstrip("+-").partition(".")
        value = int(whole + fraction or "0")
        if value == 0:
            return text
        if text.startswith("-"):
            value = -value
        decimals = len(fraction) + self._extra
        product = value * self._mantissa  # in units of 10**(exponent - len(fraction))
        drop = len(fraction) - self._exponent - decimals
        if drop > 0:
            quotient, remainder = divmod(product, 10**drop)
            half = 5 * 10 ** (drop - 1)
            if remainder > half or (remainder == half and quotient % 2 == 1):
                quotient += 1
            product = quotient
        else:
            product *= 10**-drop
        body = str(abs(product)).rjust(decimals + 1, "0")
        if decimals:
            body = f"{body[:-decimals]}.{body[-decimals:]}"
        return f"-{body}" if product < 0 else body


def scale_decimal(text: str, factor: Decimal) -> str:
    """text * factor as Scaler does it."""
    return Scaler(factor)(text)


def scale_row(row: Row, scale: Scaler, open_time: int, step_ms: int) -> Row:
    """A base row moved to open_time, with prices and quote volumes scaled."""
    return Row(
        open_time=open_time,
        close_time=open_time + step_ms - 1,
        open=scale(row.open),
        high=scale(row.high),
        low=scale(row.low),
        close=scale(row.close),
        volume=row.volume,
        quote_volume=scale(row.quote_volume),
        trades=row.trades,
        taker_buy_base=row.taker_buy_base,
        taker_buy_quote=scale(row.taker_buy_quote),
    )


class ShiftedRows(Sequence[Row]):
    """The base rows rotated by `offset`, re-timed to the base open_times and rescaled."""

    def __init__(self, base: Market, offset: int, factor: Decimal) -> None:
        self.base = base
        self.offset = offset % len(base.rows) if base.rows else 0
        self.factor = factor
        self._scale = Scaler(factor)

    def source_index(self, index: int) -> int:
        """Which base row supplies the values of row `index`."""
        return (index + self.offset) % len(self.base.rows)

    def __len__(self) -> int:
        return len(self.base.rows)

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | Sequence[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        source = self.base.rows[self.source_index(index)]
        return scale_row(source, self._scale, self.base.open_times[index], self.base.step_ms)


def market_factor(index: int) -> Decimal:
    """A deterministic price factor from 0.0000001 to 0.999: prices from cents to ~100k."""
    mantissa = 1 + (index * 7919) % 999
    return Decimal(mantissa).scaleb(-(3 + index % 5))


def synthetic_symbol(index: int, *, prefix: str = "SYN", quote: str = "USDT") -> str:
    """SYN001USDT for index 1."""
    return f"{prefix}{index:03d}{quote}"


def synthetic_market(
    base: Market, index: int, count: int, *, prefix: str = "SYN", quote: str = "USDT"
) -> Market:
    """Market `index` (1-based) of `count`: offsets spread evenly over the base file's dates."""
    if not 1 <= index <= count:
        raise ValueError(f"index {index} is not in 1..{count}")
    offset = index * len(base.rows) // (count + 1)
    rows = ShiftedRows(base, offset, market_factor(index))
    symbol = synthetic_symbol(index, prefix=prefix, quote=quote)
    return Market(symbol, base.interval, base.step_ms, rows, base.open_times)


def synthetic_markets(
    base: Path | Market,
    count: int,
    *,
    interval: str | None = None,
    prefix: str = "SYN",
    quote: str = "USDT",
) -> list[Market]:
    """`count` markets SYN001USDT.. from a base CSV (or Market), each from a different date.

    `interval` is for a CSV whose file name does not say it (the shared files' names do).
    """
    market = base if isinstance(base, Market) else load_market(Path(base), None, interval)
    if interval is not None and interval != market.interval:
        raise ValueError(f"the base market is {market.interval}, not {interval}")
    if count < 0 or count > 999:
        raise ValueError("count must be 0..999 (symbols have three digits)")
    if count and len(market.rows) < 2:
        raise ValueError("the base market needs at least two candles")
    return [
        synthetic_market(market, i, count, prefix=prefix, quote=quote) for i in range(1, count + 1)
    ]
