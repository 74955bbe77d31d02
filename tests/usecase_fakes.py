"""In-memory parts for the use-case layer: an exchange of synthetic candles, trainers, and
the Parts that wire them to an in-memory SQLite store. Orchestration tests run in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from candlecast.domain import Candle, ExchangeRejected, Pair, interval_ms


def no_training(pair: Pair, *, days: float, force: bool) -> dict[str, Any]:
    """A trainer for tests that must never train."""
    raise AssertionError(f"{pair} was trained in a test that never trains")


class MemoryExchange:
    """Closed candles of listed pairs, generated on demand, up to a settable clock."""

    def __init__(self, pairs: list[Pair], *, now_ms: int, history_ms: int) -> None:
        self.listed = {pair.symbol for pair in pairs}
        self.pairs = set(pairs)
        self.now_ms = now_ms
        self.first_ms = now_ms - history_ms
        self.calls = 0
        self.failure: Exception | None = None

    def __enter__(self) -> MemoryExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _check(self) -> None:
        self.calls += 1
        if self.failure is not None:
            raise self.failure

    def server_time(self) -> int:
        self._check()
        return self.now_ms

    def check_symbol(self, symbol: str) -> object:
        self._check()
        if symbol not in self.listed:
            raise ExchangeRejected(400, -1121, "Invalid symbol.")
        return symbol

    def candle(self, pair: Pair, open_time: int) -> Candle:
        base = Decimal(100 + (open_time // interval_ms(pair.interval)) % 50)
        return Candle(
            symbol=pair.symbol,
            interval=pair.interval,
            open_time=open_time,
            open=base,
            high=base + 2,
            low=base - 1,
            close=base + 1,
            volume=Decimal("3.5"),
            close_time=open_time + interval_ms(pair.interval) - 1,
        )

    def closed_kline_pages(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int,
        end_ms: int | None = None,
        server_time_ms: int | None = None,
    ) -> Iterator[list[Candle]]:
        self._check()
        pair = Pair(symbol, interval)
        if pair not in self.pairs:
            raise ExchangeRejected(400, -1120, "Invalid interval.")
        step = interval_ms(interval)
        now = server_time_ms if server_time_ms is not None else self.now_ms
        last = (now - step) // step * step
        if end_ms is not None:
            last = min(last, end_ms)
        first = max(-(-start_ms // step) * step, -(-self.first_ms // step) * step)
        page: list[Candle] = []
        for open_time in range(first, last + 1, step):
            page.append(self.candle(pair, open_time))
            if len(page) == 1000:
                yield page
                page = []
        if page:
            yield page
