"""What a running service knows beyond the database: scheduler, stream and the live candle.

The API reads it for /api/health and /api/jobs; the scheduler and the stream runner write it.
One instance per process; with `--no-scheduler` it simply reports that no scheduler runs here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from candlecast.clock import ExchangeClock
from candlecast.domain import Candle, Pair, iso_utc

# live: the stream delivers candles; degraded: REST only (the stream is down or off);
# offline: the exchange cannot be reached at all; starting: nothing heard yet;
# passive: this process runs no scheduler or stream (an API-only replica).
ConnectionState = Literal["live", "degraded", "offline", "starting", "passive"]


@dataclass(frozen=True, slots=True)
class PairHealth:
    """What this process knows of one pair's work beyond the database."""

    # The last failure of the pair's exchange work or start-up, cleared by the next success.
    error: str | None = None
    # Whether the pair's start-up sequence (backfill, first model) is running now.
    starting: bool = False


class PairBoard:
    """Thread-safe per-pair status: failures and start-ups, for /api/pairs and the markets page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: dict[Pair, PairHealth] = {}

    def failed(self, pair: Pair, error: str) -> None:
        """Records the pair's latest failure."""
        with self._lock:
            self._pairs[pair] = PairHealth(error, self._get(pair).starting)

    def succeeded(self, pair: Pair) -> None:
        """Clears the pair's failure."""
        with self._lock:
            self._pairs[pair] = PairHealth(None, self._get(pair).starting)

    def starting(self, pair: Pair, running: bool) -> None:
        """Marks the pair's start-up sequence as running or done."""
        with self._lock:
            self._pairs[pair] = PairHealth(self._get(pair).error, running)

    def forget(self, pair: Pair) -> None:
        """Drops a pair no longer followed."""
        with self._lock:
            self._pairs.pop(pair, None)

    def get(self, pair: Pair) -> PairHealth:
        """The pair's status (a fresh one if nothing was recorded)."""
        with self._lock:
            return self._get(pair)

    def _get(self, pair: Pair) -> PairHealth:
        return self._pairs.get(pair) or PairHealth()


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
    # Each pair's in-progress candle from the stream: for display only, never stored.
    live_candles: dict[Pair, Candle] = field(default_factory=dict)
    # Bumped whenever a candle or forecast lands, so pages can poll cheaply (ETag).
    version: int = 0
    # The pairs subscribed on a connected stream connection now.
    streamed_pairs: frozenset[Pair] = frozenset()
    # Per-pair failures and start-ups.
    pairs: PairBoard = field(default_factory=PairBoard)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes: Any) -> None:
        """Sets some fields atomically."""
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)

    def set_live_candle(self, pair: Pair, candle: Candle | None) -> None:
        """Records (or clears, with None) the pair's in-progress candle."""
        with self._lock:
            if candle is None:
                self.live_candles.pop(pair, None)
            else:
                self.live_candles[pair] = candle

    def live_candle(self, pair: Pair) -> Candle | None:
        """The pair's in-progress candle from the stream, if any."""
        with self._lock:
            return self.live_candles.get(pair)

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
                "version": self.version,
            }
