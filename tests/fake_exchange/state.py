"""What the fake exchange's HTTP and WebSocket handlers share."""

from __future__ import annotations

import threading
import time
from collections import deque
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


@dataclass
class Stats:
    """Counts that tests and benchmarks assert on."""

    klines_calls: int = 0
    api_calls: int = 0
    ws_connections: int = 0
    ws_messages: int = 0


@dataclass
class FakeState:
    """Market, clock, faults and live WebSocket handles of one fake exchange."""

    market: Market
    clock: VirtualClock
    ws_update_ms: int = 250
    ws_heartbeat_s: float = 20.0
    faults: Faults = field(default_factory=Faults)
    weight: WeightMeter = field(default_factory=WeightMeter)
    stats: Stats = field(default_factory=Stats)
    # Live kline sockets (aiohttp WebSocketResponse objects), touched only on the server loop.
    sockets: set[Any] = field(default_factory=set)
