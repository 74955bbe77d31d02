"""What the fake exchange's HTTP and WebSocket handlers share."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tests.fake_exchange.faults import Faults
from tests.fake_exchange.market import Market, VirtualClock


class WeightMeter:
    """Request weight used in a rolling minute of real time, like X-MBX-USED-WEIGHT-1M."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: deque[tuple[float, int]] = deque()

    def add(self, weight: int) -> int:
        """Records weight now and returns the total of the last 60 s."""
        now = time.monotonic()
        with self._lock:
            self._spent.append((now, weight))
            while self._spent and self._spent[0][0] <= now - 60.0:
                self._spent.popleft()
            return sum(w for _, w in self._spent)

    def reset(self) -> None:
        """Forgets all weight spent."""
        with self._lock:
            self._spent.clear()


class RollingCounter:
    """Events in a rolling window of real seconds (WebSocket connection attempts per IP)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._times: deque[float] = deque()

    def admit(self, limit: int) -> bool:
        """Counts one event now unless `limit` were already seen in the window."""
        now = time.monotonic()
        with self._lock:
            while self._times and self._times[0] <= now - self.window_s:
                self._times.popleft()
            if len(self._times) >= limit:
                return False
            self._times.append(now)
            return True

    def reset(self) -> None:
        """Forgets every event."""
        with self._lock:
            self._times.clear()


@dataclass(frozen=True)
class WsLimits:
    """Binance's WebSocket limits, smaller in tests that want to hit them quickly."""

    max_streams: int = 1024  # streams on one connection
    max_incoming_per_s: int = 5  # text/binary frames a client sends per second
    max_connections: int = 300  # connection attempts per window per IP
    connections_window_s: float = 300.0


@dataclass
class Stats:
    """Counts that tests and benchmarks assert on."""

    klines_calls: int = 0
    api_calls: int = 0
    ws_connections: int = 0  # WebSockets accepted, all kinds
    ws_messages: int = 0  # events sent (kline, serverShutdown), not control answers
    ws_refused: int = 0  # handshakes refused over the per-5-minute connection limit
    ws_control_messages: int = 0  # JSON requests received (SUBSCRIBE, UNSUBSCRIBE, LIST, bad)
    ws_subscribe_messages: int = 0  # SUBSCRIBE requests received
    ws_unsubscribe_messages: int = 0  # UNSUBSCRIBE requests received
    ws_rate_limited: int = 0  # connections closed for sending over 5 messages/s
    ws_stream_limit_hits: int = 0  # requests or URLs over the 1024-stream limit
    ws_stream_messages: Counter[str] = field(default_factory=Counter)  # per stream name


@dataclass
class FakeState:
    """Markets, clock, faults and live WebSocket handles of one fake exchange.

    `market` is the first market; `markets` holds every one by (SYMBOL, interval). Handlers
    read `markets` on the server loop; add markets before start() or via FakeExchange.add_market.
    """

    market: Market
    clock: VirtualClock
    ws_update_ms: int = 250
    ws_heartbeat_s: float = 20.0
    faults: Faults = field(default_factory=Faults)
    weight: WeightMeter = field(default_factory=WeightMeter)
    stats: Stats = field(default_factory=Stats)
    # Live WebSocket connections (ws.Connection), touched only on the server loop.
    sockets: set[Any] = field(default_factory=set)
    markets: dict[tuple[str, str], Market] = field(default_factory=dict)
    ws_limits: WsLimits = field(default_factory=WsLimits)
    ws_attempts: RollingCounter = field(default_factory=lambda: RollingCounter(300.0))

    def __post_init__(self) -> None:
        self.markets = {(self.market.symbol, self.market.interval): self.market, **self.markets}
        self.ws_attempts.window_s = self.ws_limits.connections_window_s

    def add_market(self, market: Market) -> None:
        """Serves one more market; a (symbol, interval) already served is an error."""
        key = (market.symbol, market.interval)
        if key in self.markets:
            raise ValueError(f"{market.symbol} {market.interval} is served already")
        self.markets[key] = market

    def find(self, symbol: str, interval: str) -> Market | None:
        """The market for an upper-case symbol and an interval, if served."""
        return self.markets.get((symbol, interval))

    def symbols(self) -> list[str]:
        """Every served symbol once, in the order first added."""
        return list(dict.fromkeys(symbol for symbol, _ in self.markets))

    def find_stream(self, name: str) -> Market | None:
        """The market of a lower-case kline stream name such as btcusdt@kline_5m, if served."""
        symbol, sep, interval = name.partition("@kline_")
        if not sep or symbol != symbol.lower():
            return None
        return self.find(symbol.upper(), interval)
