"""Token buckets that keep the stream inside Binance's WebSocket limits by waiting, not failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# Binance: 300 connection attempts per 5 minutes per IP.
CONNECTS_PER_WINDOW = 300
CONNECT_WINDOW_SECONDS = 300.0
# Binance: 5 incoming messages per second per connection, and PING and PONG frames count too.
# Control messages are spaced at 4 per second, leaving room for the pong that answers the
# server's ping (every 20 s) and our own keepalive ping in any one-second window.
CONTROL_MESSAGES_PER_SECOND = 4.0


class TokenBucket:
    """Up to `capacity` acquisitions at once, refilled at `rate` per second; acquire() waits.

    Not thread-safe: every acquire() runs on one event loop. A bucket may be shared by several
    streams on that loop (the connect limit is per IP, not per stream).
    """

    def __init__(
        self,
        *,
        rate: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._stamp = clock()
        self.waited_seconds = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self) -> bool:
        """Takes a token if one is there now."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Takes a token, sleeping until one is refilled. Waiters are not strictly FIFO."""
        while not self.try_acquire():
            delay = (1 - self._tokens) / self.rate
            self.waited_seconds += delay
            await self._sleep(delay)


def connect_limiter() -> TokenBucket:
    """Binance's connection limit: a burst of 300, then one connection per second."""
    return TokenBucket(
        rate=CONNECTS_PER_WINDOW / CONNECT_WINDOW_SECONDS, capacity=float(CONNECTS_PER_WINDOW)
    )


def control_limiter(rate: float = CONTROL_MESSAGES_PER_SECOND) -> TokenBucket:
    """One connection's SUBSCRIBE/UNSUBSCRIBE pace: evenly spaced, no burst."""
    return TokenBucket(rate=rate, capacity=1.0)
