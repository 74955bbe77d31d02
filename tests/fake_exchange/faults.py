"""Fault injection: which API request fails, and how; several rules can be active at once."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# When one request number matches several rules the most drastic wins, in this order.
_PRECEDENCE = ("drop", "ban_418", "restricted_451", "blocked_403", "limit_429", "error_5xx",
               "malformed", "slow")  # fmt: skip


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
    # Close each kline WebSocket abruptly after this many messages (0 = never).
    ws_drop_every_messages: int = 0
    # Only requests to this path are counted and faulted, e.g. "/api/v3/klines".
    only_path: str | None = None


@dataclass
class FaultCounters:
    """How many requests were seen and how many of each fault were injected."""

    requests: int = 0
    injected: dict[str, int] = field(default_factory=dict)


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
            return {"requests": self._counters.requests, **dict(self._counters.injected)}

    def next_fault(self, path: str) -> str | None:
        """Counts one API request and returns the fault to inject, if any."""
        with self._lock:
            cfg = self._config
            if cfg.only_path is not None and path != cfg.only_path:
                return None
            self._counters.requests += 1
            n = self._counters.requests
            every = {
                "drop": cfg.every_drop,
                "ban_418": cfg.every_418,
                "restricted_451": cfg.every_451,
                "blocked_403": cfg.every_403,
                "limit_429": cfg.every_429,
                "error_5xx": cfg.every_5xx,
                "malformed": cfg.every_malformed,
                "slow": cfg.every_slow,
            }
            for name in _PRECEDENCE:
                if every[name] > 0 and n % every[name] == 0:
                    self._counters.injected[name] = self._counters.injected.get(name, 0) + 1
                    return name
            return None
