"""Fault injection: which API request fails, and how; several rules can be active at once."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# When one request number matches several rules the most drastic wins, in this order.
_PRECEDENCE = (
    "drop",
    "ban_418",
    "restricted_451",
    "blocked_403",
    "limit_429",
    "error_5xx",
    "malformed",
    "empty",
    "slow",
)


@dataclass
class FaultConfig:
    """Every Nth API request (0 = never) gets the fault; counted over /api/ requests only."""

    every_429: int = 0
    retry_after_429: str = "1"
    every_418: int = 0
    retry_after_418: str = "120"
    every_5xx: int = 0
    status_5xx: int = 502
    every_drop: int = 0
    every_malformed: int = 0
    every_slow: int = 0
    slow_seconds: float = 0.5
    every_451: int = 0
    every_403: int = 0
    # A 200 with an empty klines array, as if the exchange had no candles in the range.
    every_empty: int = 0
    # Like Binance, keep answering 418 to every request until the ban (Retry-After) ends.
    ban_persists: bool = False
    # Close each kline WebSocket abruptly after this many messages (0 = never).
    ws_drop_every_messages: int = 0
    # Send every closed-candle message twice.
    ws_duplicate_closes: bool = False
    # Hold each closed-candle message back and send it after the next one (out of order).
    ws_reorder_closes: bool = False
    # After this many messages, go silent: no messages, no pings, no pongs (0 = never).
    ws_stall_after_messages: int = 0
    # How many sockets stall (each new socket after that behaves).
    ws_stalls: int = 1
    # Only requests to this path are counted and faulted, e.g. "/api/v3/klines".
    only_path: str | None = None
    # Stop injecting REST faults after this many (0 = no limit), e.g. one empty page only.
    max_faults: int = 0


@dataclass
class FaultCounters:
    """How many requests were seen and how many of each fault were injected."""

    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    # Requests that arrived while a persistent ban was on (a polite client sends none).
    during_ban: int = 0
    banned_until: float = 0.0
    ws_stalls_done: int = 0
    # (monotonic seconds, path) of every counted request, to measure weight per window.
    log: list[tuple[float, str]] = field(default_factory=list)


class Faults:
    """Thread-safe fault plan shared by the HTTP handlers and the control endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._counters = FaultCounters()

    @property
    def config(self) -> FaultConfig:
        """A copy of the current plan."""
        with self._lock:
            return FaultConfig(**asdict(self._config))

    def configure(self, **changes: Any) -> FaultConfig:
        """Changes some rules and restarts the request count; unknown names raise TypeError."""
        known = {f.name for f in fields(FaultConfig)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown fault settings: {sorted(unknown)}")
        with self._lock:
            for name, value in changes.items():
                setattr(self._config, name, value)
            self._counters = FaultCounters()
            return FaultConfig(**asdict(self._config))

    def reset(self) -> None:
        """Turns every fault off."""
        with self._lock:
            self._config = FaultConfig()
            self._counters = FaultCounters()

    def counters(self) -> dict[str, Any]:
        """Requests seen and faults injected so far."""
        with self._lock:
            c = self._counters
            during = {"during_ban": c.during_ban} if c.during_ban else {}
            return {"requests": c.requests, **during, **dict(c.injected)}

    def request_log(self) -> list[tuple[float, str]]:
        """(monotonic time, path) of each counted request since the last configure/reset."""
        with self._lock:
            return list(self._counters.log)

    def take_ws_stall(self, messages_sent: int) -> bool:
        """True when this socket should now go silent (counts one stall)."""
        with self._lock:
            cfg, c = self._config, self._counters
            if not cfg.ws_stall_after_messages or messages_sent < cfg.ws_stall_after_messages:
                return False
            if c.ws_stalls_done >= cfg.ws_stalls:
                return False
            c.ws_stalls_done += 1
            c.injected["ws_stall"] = c.injected.get("ws_stall", 0) + 1
            return True

    def count_ws(self, name: str) -> None:
        """Counts one injected stream fault."""
        with self._lock:
            self._counters.injected[name] = self._counters.injected.get(name, 0) + 1

    def next_fault(self, path: str) -> str | None:
        """Counts one API request and returns the fault to inject, if any."""
        with self._lock:
            cfg = self._config
            if cfg.only_path is not None and path != cfg.only_path:
                return None
            self._counters.requests += 1
            n = self._counters.requests
            now = time.monotonic()
            self._counters.log.append((now, path))
            if cfg.ban_persists and now < self._counters.banned_until:
                self._counters.during_ban += 1
                return "ban_418"
            every = {
                "drop": cfg.every_drop,
                "ban_418": cfg.every_418,
                "restricted_451": cfg.every_451,
                "blocked_403": cfg.every_403,
                "limit_429": cfg.every_429,
                "error_5xx": cfg.every_5xx,
                "malformed": cfg.every_malformed,
                "empty": cfg.every_empty if path == "/api/v3/klines" else 0,
                "slow": cfg.every_slow,
            }
            if cfg.max_faults and sum(self._counters.injected.values()) >= cfg.max_faults:
                return None
            for name in _PRECEDENCE:
                if every[name] > 0 and n % every[name] == 0:
                    self._counters.injected[name] = self._counters.injected.get(name, 0) + 1
                    if name == "ban_418" and cfg.ban_persists:
                        self._counters.banned_until = now + float(cfg.retry_after_418)
                    return name
            return None
