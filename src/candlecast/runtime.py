"""What a running service knows beyond the database: scheduler, stream and the live candle.

The API reads it for /api/health and /api/jobs; the scheduler and the stream runner write it.
One instance per process; with `--no-scheduler` it simply reports that no scheduler runs here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from candlecast.domain import Candle


@dataclass
class Runtime:
    """Thread-safe status shared by the scheduler, the stream runner and the API."""

    scheduler_enabled: bool = False
    scheduler_running: bool = False
    stream_enabled: bool = False
    stream_connected: bool = False
    stream_detail: dict[str, Any] = field(default_factory=dict)
    next_runs: list[dict[str, Any]] = field(default_factory=list)
    # The last exchange failure of a REST job, cleared by the next success; None when fine.
    exchange_error: str | None = None
    # The in-progress candle from the stream: for display only, never stored.
    live_candle: Candle | None = None
    # Bumped whenever a candle or forecast lands, so pages can poll cheaply (ETag).
    version: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes: Any) -> None:
        """Sets some fields atomically."""
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def bump(self) -> int:
        """Marks that new data landed; returns the new version."""
        with self._lock:
            self.version += 1
            return self.version

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy for the API."""
        with self._lock:
            return {
                "scheduler_enabled": self.scheduler_enabled,
                "scheduler_running": self.scheduler_running,
                "stream_enabled": self.stream_enabled,
                "stream_connected": self.stream_connected,
                "stream_detail": dict(self.stream_detail),
                "next_runs": list(self.next_runs),
                "exchange_error": self.exchange_error,
                "live_candle": self.live_candle,
                "version": self.version,
            }
