"""The exchange's clock: the host clock plus the offset measured from GET /api/v3/time.

Every age, staleness check and "is it closed" decision reads this, so a host clock that is hours
off (a VPS without NTP) or a replayed, virtual-time exchange changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def host_clock_ms() -> int:
    """The host's wall clock, epoch ms."""
    return time.time_ns() // 1_000_000


class ExchangeClock:
    """Thread-safe offset between the exchange's clock and the host's, updated on every read."""

    def __init__(self, host_clock: Callable[[], int] = host_clock_ms) -> None:
        self._host = host_clock
        self._lock = threading.Lock()
        self._offset_ms: int | None = None
        self._measured_at_ms: int | None = None

    def observe(self, server_ms: int, sent_ms: int, received_ms: int) -> None:
        """Records one /api/v3/time answer; the server read it about halfway through the trip."""
        offset = server_ms - (sent_ms + received_ms) // 2
        with self._lock:
            self._offset_ms = offset
            self._measured_at_ms = received_ms

    @property
    def offset_ms(self) -> int | None:
        """Exchange minus host, ms; None until the exchange has answered once."""
        with self._lock:
            return self._offset_ms

    @property
    def measured(self) -> bool:
        """Whether an offset has been measured yet."""
        return self.offset_ms is not None

    def now_ms(self) -> int:
        """The exchange's time now (the host's until an offset has been measured)."""
        return self._host() + (self.offset_ms or 0)

    def host_ms(self) -> int:
        """The host's clock, for bookkeeping that must not depend on the exchange."""
        return self._host()
