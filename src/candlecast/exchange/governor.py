"""Keeps the REST client polite: a per-minute weight budget and concurrency that backs off."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from candlecast.domain import IPBanned


class WeightGovernor:
    """Keeps request weight under a per-minute budget, using X-MBX-USED-WEIGHT-1M."""

    def __init__(
        self,
        *,
        budget_per_minute: int,
        sleep: Callable[[float], None],
        wall_clock: Callable[[], float],
    ) -> None:
        self._budget = budget_per_minute
        self._sleep = sleep
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._window = -1
        self._used = 0
        self._paused_until = 0.0
        self._banned_until = 0.0
        self.slept = 0.0

    def acquire(self, weight: int) -> None:
        """Blocks until `weight` fits the current minute and any 429 pause is over; raises
        IPBanned while a 418 ban lasts, since any request then only lengthens the ban."""
        with self._lock:
            if self._wall() < self._banned_until:
                raise IPBanned(int(self._banned_until * 1000))
            wait = max(0.0, self._paused_until - self._wall())
            now = self._wall() + wait
            if self._window != int(now // 60):
                self._window, self._used = int(now // 60), 0
            if self._used + weight > self._budget:
                # Binance's counter restarts each minute; waiting for that avoids a 429 (and 418).
                wait += 60.0 - now % 60.0 + 0.05
                self._window, self._used = self._window + 1, 0
            self._used += weight
            self.slept += wait
        if wait > 0:
            self._sleep(wait)

    def observe(self, used_header: str | None) -> int | None:
        """Takes the exchange's own count of weight used this minute."""
        if used_header is None or not used_header.strip().isdigit():
            return None
        used = int(used_header)
        with self._lock:
            self._used = max(self._used, used)
        return used

    def pause(self, seconds: float) -> None:
        """Makes every caller wait `seconds` (after a 429) before its next request."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._wall() + seconds)

    def ban(self, until_seconds: float) -> None:
        """Refuses every request until `until_seconds` (wall-clock epoch seconds)."""
        with self._lock:
            self._banned_until = max(self._banned_until, until_seconds)


class _Slot:
    """One call's place at the gate; escalate() makes it exclusive until the call ends."""

    def __init__(self, serial: threading.Lock, exclusive: bool) -> None:
        self._serial = serial
        self.exclusive = exclusive

    def escalate(self) -> None:
        """Waits for, then keeps, the exclusive lock (idempotent)."""
        if not self.exclusive:
            self._serial.acquire()
            self.exclusive = True


class ConcurrencyGate:
    """Lets calls run in parallel while the exchange is healthy, one at a time after trouble."""

    def __init__(self, *, calm_after: int = 20) -> None:
        self._calm_after = calm_after
        self._lock = threading.Lock()
        self._serial = threading.Lock()
        self._trouble = 0

    @contextmanager
    def slot(self) -> Iterator[_Slot]:
        """Holds a place for one call and all its retries."""
        with self._lock:
            serial = self._trouble > 0
        if serial:
            self._serial.acquire()
        slot = _Slot(self._serial, serial)
        try:
            yield slot
        finally:
            if slot.exclusive:
                self._serial.release()

    def failed(self, slot: _Slot) -> None:
        """A retryable failure: this call keeps the exchange to itself while it retries."""
        with self._lock:
            self._trouble = self._calm_after
        # Parallel retries would race each other into the exchange's failure window.
        slot.escalate()

    def succeeded(self) -> None:
        """A call succeeded."""
        with self._lock:
            self._trouble = max(0, self._trouble - 1)
