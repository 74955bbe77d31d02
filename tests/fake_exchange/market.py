"""Candle data replayed by the fake exchange, and the virtual clock that reveals it.

Prices stay the CSV's strings so clients can be tested for exactness. Columns a CSV lacks are
served as Binance would serve an empty value: quote_volume "0", trades 0, taker volumes "0".
"""

from __future__ import annotations

import bisect
import csv
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from candlecast.domain import INTERVAL_MS

_NAME_RE = re.compile(r"^(?P<symbol>[a-z0-9]+)-(?P<interval>\d+[mhdw])-", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Row:
    """One final candle as strings, exactly as the CSV holds it."""

    open_time: int
    close_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: int
    taker_buy_base: str
    taker_buy_quote: str


@dataclass(frozen=True, slots=True)
class Market:
    """All candles of one symbol and interval, sorted by open_time.

    rows and open_times are any sequences, so synthetic markets can compute rows on demand
    and share the base market's open_times instead of holding copies.
    """

    symbol: str
    interval: str
    step_ms: int
    rows: Sequence[Row]
    open_times: Sequence[int]

    @property
    def stream(self) -> str:
        """Binance's kline stream name, e.g. btcusdt@kline_5m."""
        return stream_name(self.symbol, self.interval)

    def visible_end(self, now_ms: int) -> int:
        """Index one past the last candle whose open_time <= now_ms."""
        return bisect.bisect_right(self.open_times, now_ms)

    def index_at_or_after(self, ts_ms: int) -> int:
        """Index of the first candle with open_time >= ts_ms."""
        return bisect.bisect_left(self.open_times, ts_ms)


def stream_name(symbol: str, interval: str) -> str:
    """Binance's lower-case kline stream name for a symbol and interval."""
    return f"{symbol.lower()}@kline_{interval}"


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@lru_cache(maxsize=8)
def load_market(path: Path, symbol: str | None = None, interval: str | None = None) -> Market:
    """Loads a shared-data CSV; symbol and interval default to those in the file name."""
    match = _NAME_RE.match(path.name)
    sym = (symbol or (match.group("symbol") if match else "")).upper()
    ivl = interval or (match.group("interval") if match else "")
    if not sym or ivl not in INTERVAL_MS:
        raise ValueError(f"{path}: pass symbol and interval; the file name does not say them")
    step = INTERVAL_MS[ivl]
    rows: list[Row] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for rec in csv.DictReader(handle):
            open_time = _iso_ms(rec["open_time"])
            rows.append(
                Row(
                    open_time=open_time,
                    close_time=open_time + step - 1,
                    open=rec["open"],
                    high=rec["high"],
                    low=rec["low"],
                    close=rec["close"],
                    volume=rec["volume"],
                    quote_volume=rec.get("quote_volume") or "0",
                    trades=int(rec.get("trades") or 0),
                    taker_buy_base=rec.get("taker_buy_base") or "0",
                    taker_buy_quote=rec.get("taker_buy_quote") or "0",
                )
            )
    return Market(sym, ivl, step, tuple(rows), tuple(r.open_time for r in rows))


def _scaled(final: str, base: str, fraction: Decimal) -> str:
    """base + (final - base) * fraction, kept to the final value's number of decimals."""
    exponent = Decimal(final).as_tuple().exponent
    quantum = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    value = Decimal(base) + (Decimal(final) - Decimal(base)) * fraction
    return format(value.quantize(quantum), "f")


def partial_row(row: Row, now_ms: int) -> Row:
    """The candle as it looked at now_ms: values move linearly from open towards final."""
    if now_ms > row.close_time:
        return row
    step = row.close_time + 1 - row.open_time
    # Strictly below 1 so a partial candle always differs from the final one (volume at least).
    fraction = Decimal(max(0, now_ms - row.open_time)) / Decimal(step)
    return Row(
        open_time=row.open_time,
        close_time=row.close_time,
        open=row.open,
        high=_scaled(row.high, row.open, fraction),
        low=_scaled(row.low, row.open, fraction),
        close=_scaled(row.close, row.open, fraction),
        volume=_scaled(row.volume, "0", fraction),
        quote_volume=_scaled(row.quote_volume, "0", fraction),
        trades=int(row.trades * fraction),
        taker_buy_base=_scaled(row.taker_buy_base, "0", fraction),
        taker_buy_quote=_scaled(row.taker_buy_quote, "0", fraction),
    )


def kline_array(row: Row) -> list[object]:
    """The 12-field REST array for a row."""
    return [
        row.open_time,
        row.open,
        row.high,
        row.low,
        row.close,
        row.volume,
        row.close_time,
        row.quote_volume,
        row.trades,
        row.taker_buy_base,
        row.taker_buy_quote,
        "0",
    ]


class VirtualClock:
    """Exchange time in epoch ms, running at `speed` times real time; thread-safe."""

    def __init__(
        self, *, start_ms: int, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._anchor_ms = float(start_ms)
        self._anchor_real = monotonic()
        self._speed = speed

    def now_ms(self) -> int:
        """The current virtual time."""
        with self._lock:
            elapsed = self._monotonic() - self._anchor_real
            return int(self._anchor_ms + elapsed * self._speed * 1000)

    @property
    def speed(self) -> float:
        """Virtual seconds per real second; 0 means paused."""
        return self._speed

    def set(self, *, now_ms: int | None = None, speed: float | None = None) -> None:
        """Jumps to now_ms and/or changes the speed from this instant on."""
        with self._lock:
            real = self._monotonic()
            current = self._anchor_ms + (real - self._anchor_real) * self._speed * 1000
            self._anchor_ms = float(now_ms) if now_ms is not None else current
            self._anchor_real = real
            if speed is not None:
                self._speed = speed

    def advance(self, ms: int) -> None:
        """Moves virtual time forward by ms."""
        self.set(now_ms=self.now_ms() + ms)
