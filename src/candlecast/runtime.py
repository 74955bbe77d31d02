"""What a running service knows beyond the database: scheduler, stream and the live candle.

The API reads it for /api/health and /api/jobs; the scheduler and the stream runner write it.
One instance per process; with `--no-scheduler` it simply reports that no scheduler runs here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from candlecast.clock import ExchangeClock
from candlecast.domain import Candle, iso_utc

# live: the stream delivers candles; degraded: REST only (the stream is down or off);
# offline: the exchange cannot be reached at all; starting: nothing heard yet;
# passive: this process runs no scheduler or stream (an API-only replica).
ConnectionState = Literal["live", "degraded", "offline", "starting", "passive"]


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
    # What the user can do about exchange_error (network, base URL, 451 alternative).
    exchange_hint: str | None = None
    # When the next attempt to reach the exchange is due (epoch ms, host clock); None if unknown.
    next_retry_ms: int | None = None
    # Whether any REST call has succeeded since start.
    exchange_reached: bool = False
    # The exchange's clock (host clock + measured offset); shared with Services.
    clock: ExchangeClock = field(default_factory=ExchangeClock)
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

    def exchange_now_ms(self) -> int:
        """The exchange's time now: every age and staleness decision uses this clock."""
        return self.clock.now_ms()

    def connection(self) -> dict[str, Any]:
        """How this process reaches the exchange now, with what to do when it cannot."""
        with self._lock:
            state, reason = self._connection_state()
            hint = self.exchange_hint if state in ("offline", "degraded") else None
            retry = self.next_retry_ms if state != "live" else None
        return {
            "state": state,
            "reason": reason,
            "hint": hint,
            "next_retry_at": iso_utc(retry) if retry is not None else None,
        }

    def _connection_state(self) -> tuple[ConnectionState, str | None]:
        if not self.scheduler_enabled:
            return "passive", "this process runs no scheduler or stream"
        if self.stream_connected:
            if self.exchange_error:
                return "degraded", f"stream live, REST failing: {self.exchange_error}"
            return "live", None
        if self.exchange_error:
            return "offline", self.exchange_error
        if not self.exchange_reached:
            return "starting", "waiting for the exchange's first answer"
        if not self.stream_enabled:
            return "degraded", "real-time stream off (CANDLECAST_STREAM=false); REST ingest only"
        return "degraded", "stream disconnected; REST ingest fills in until it reconnects"

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
