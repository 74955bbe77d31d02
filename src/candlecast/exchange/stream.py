"""Binance kline WebSocket client: closed candles, live updates, reconnects with gap hints.

`PairStream` carries many pairs (see stream_pairs.py); `KlineStream` is its one-pair form on
Binance's raw `/ws/<stream>` URL, kept for callers that follow a single symbol and interval.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.exchange.stream_connection import DEFAULT_MAX_AGE_SECONDS
from candlecast.exchange.stream_events import (
    ConnectionState,
    KlineClosed,
    KlineUpdate,
    PairResume,
    PairState,
    Reconnected,
    StreamEvent,
    StreamObserver,
    StreamState,
    parse_kline_event,
    stream_name,
)
from candlecast.exchange.stream_limits import TokenBucket, connect_limiter
from candlecast.exchange.stream_pairs import PairStream


class KlineStream:
    """Async iterator of kline events for one symbol and interval, reconnecting forever."""

    def __init__(
        self,
        *,
        ws_base_url: str,
        symbol: str,
        interval: str,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        idle_timeout_seconds: float = 60.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        open_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        observer: StreamObserver | None = None,
        connect_limiter: TokenBucket | None = None,
    ) -> None:
        self.pair = Pair.of(symbol, interval)
        self.symbol = self.pair.symbol
        self.interval = self.pair.interval
        self.url = f"{ws_base_url.rstrip('/')}/ws/{stream_name(self.pair)}"
        self._stream = PairStream(
            ws_base_url=ws_base_url,
            pairs=(self.pair,),
            combined=False,
            max_age_seconds=max_age_seconds,
            idle_timeout_seconds=idle_timeout_seconds,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            sleep=sleep,
            rng=rng,
            observer=observer,
            connect_limiter=connect_limiter,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> KlineStream:
        """Builds a stream for the configured symbol and interval; keyword overrides win."""
        options: dict[str, Any] = {
            "ws_base_url": settings.binance_ws_url,
            "symbol": settings.symbol,
            "interval": settings.interval,
        }
        return cls(**{**options, **overrides})

    @property
    def state(self) -> StreamState:
        """A snapshot of the connection's health."""
        return self._stream.state

    def resume_after(self, open_time: int | None) -> None:
        """Skips closed candles at or before open_time (e.g. the newest one already stored)."""
        self._stream.resume_after(self.pair, open_time)

    async def close(self) -> None:
        """Stops the iterator at its next step and closes the connection."""
        await self._stream.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self.events()

    def events(self) -> AsyncIterator[StreamEvent]:
        """Yields events until close(); a Reconnected event follows every reconnect."""
        return self._stream.events()

    def _decode(self, raw: str | bytes) -> KlineClosed | KlineUpdate | None:
        """Decodes one message as the live connection would (for tests of the decoder)."""
        return self._stream._decode(raw)


__all__ = [
    "ConnectionState",
    "KlineClosed",
    "KlineStream",
    "KlineUpdate",
    "PairResume",
    "PairState",
    "PairStream",
    "Reconnected",
    "StreamEvent",
    "StreamObserver",
    "StreamState",
    "TokenBucket",
    "connect_limiter",
    "parse_kline_event",
    "stream_name",
]
