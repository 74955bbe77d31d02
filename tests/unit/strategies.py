"""Hypothesis strategies and settings shared by the property tests: candles as Binance writes
them, with every decimal an exact string."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from candlecast.domain import format_decimal, interval_ms

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Binance's first candles (2017) to well past today, in ms.
FIRST_MS, LAST_MS = 1_500_000_000_000, 4_000_000_000_000


@st.composite
def decimal_text(draw: st.DrawFn, *, low: int = 0, high: int = 10**7) -> str:
    """A non-negative decimal string as Binance writes one: digits, a point, up to 8 places
    (trailing zeros kept)."""
    whole = draw(st.integers(low, high))
    places = draw(st.integers(0, 8))
    if places == 0:
        return str(whole)
    fraction = draw(st.integers(0, 10**places - 1))
    return f"{whole}.{fraction:0{places}d}"


@st.composite
def candle_fields(draw: st.DrawFn, interval: str = "5m") -> dict[str, Any]:
    """One consistent candle: aligned open time, high >= open/close >= low, exact strings."""
    step = interval_ms(interval)
    open_time = draw(st.integers(FIRST_MS // step, LAST_MS // step)) * step
    prices = sorted(Decimal(draw(decimal_text(low=1))) for _ in range(4))
    texts = [format_decimal(price) for price in prices]
    low, a, b, high = texts
    open_, close = (a, b) if draw(st.booleans()) else (b, a)
    return {
        "open_time": open_time,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": draw(decimal_text()),
        "close_time": open_time + step - 1,
        "quote_volume": draw(decimal_text()),
        "trades": draw(st.integers(0, 10**7)),
        "taker_buy_base": draw(decimal_text()),
        "taker_buy_quote": draw(decimal_text()),
    }


VALUES = ("open", "high", "low", "close", "volume")
OPTIONAL = ("quote_volume", "taker_buy_base", "taker_buy_quote")
