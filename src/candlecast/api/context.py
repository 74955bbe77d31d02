"""What every route reaches through the request: services, runtime, clock, trainer, caches."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Query, Request

from candlecast.api.background import BackgroundJobs
from candlecast.api.series_cache import TrailingColumns
from candlecast.api.shaping import MAX_WINDOW_DAYS
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import (
    InvalidInterval,
    InvalidSymbol,
    parse_iso_utc,
    validate_interval,
    validate_symbol,
)
from candlecast.jobs.common import DAY_MS
from candlecast.runtime import Runtime


class BadParameter(Exception):
    """A query or body parameter that is well-typed but wrong; answered with 422."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message
        super().__init__(f"{name}: {message}")


class Trainer(Protocol):
    """Trains a model out of process (jobs.isolated.train_isolated) and returns its details."""

    def __call__(
        self, settings: Settings, *, symbol: str, interval: str, days: float
    ) -> dict[str, Any]: ...


class ResponseCache:
    """A small thread-safe LRU of encoded responses, each valid for `ttl` seconds."""

    def __init__(self, *, size: int = 32, ttl: float | None = None) -> None:
        self._size = size
        self._ttl = ttl
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The cached value, or None when absent or expired."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            stored_at, value = hit
            if self._ttl is not None and time.monotonic() - stored_at > self._ttl:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Stores a value, evicting the least recently used beyond the size."""
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def wall_clock_ms() -> int:
    """Epoch milliseconds now."""
    return time.time_ns() // 1_000_000


@dataclass
class ApiContext:
    """The app's long-lived state; one per create_app."""

    services: Services
    runtime: Runtime
    trainer: Trainer
    # The exchange's clock by default (see create_app): ages never depend on the host's clock.
    clock: Callable[[], int] = wall_clock_ms
    background: BackgroundJobs = field(init=False)
    series_cache: ResponseCache = field(default_factory=lambda: ResponseCache(size=16))
    # The trailing window of columns behind /api/series, updated incrementally.
    columns: TrailingColumns = field(
        default_factory=lambda: TrailingColumns(span_ms=(MAX_WINDOW_DAYS + 1) * DAY_MS)
    )
    # Live-ish answers (forecast, health) are re-read at most once a second per key.
    fast_cache: ResponseCache = field(default_factory=lambda: ResponseCache(size=64, ttl=1.0))

    def __post_init__(self) -> None:
        self.background = BackgroundJobs(self.services.engine)

    def is_tracked(self, pair: Pair) -> bool:
        """Whether this service follows the pair (today: the configured one)."""
        settings = self.services.settings
        return (pair.symbol, pair.interval) == (settings.symbol, settings.interval)


async def get_context(request: Request) -> ApiContext:
    """The ApiContext of the app serving this request."""
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


@dataclass(frozen=True)
class Pair:
    """A validated symbol and interval."""

    symbol: str
    interval: str


async def get_pair(
    context: Context,
    symbol: Annotated[
        str | None, Query(description="Symbol, e.g. BTCUSDT (default: the configured one)")
    ] = None,
    interval: Annotated[
        str | None, Query(description="Kline interval, e.g. 5m (default: the configured one)")
    ] = None,
) -> Pair:
    """The request's pair, defaulting to the configured one."""
    return resolve_pair(context, symbol, interval)


def resolve_pair(context: ApiContext, symbol: str | None, interval: str | None) -> Pair:
    """Validates a symbol and interval, naming the bad one; None means the configured one."""
    settings = context.services.settings
    try:
        chosen_symbol = settings.symbol if symbol is None else validate_symbol(symbol)
    except InvalidSymbol as exc:
        raise BadParameter("symbol", str(exc)) from None
    try:
        chosen_interval = settings.interval if interval is None else validate_interval(interval)
    except InvalidInterval as exc:
        raise BadParameter("interval", str(exc)) from None
    return Pair(chosen_symbol, chosen_interval)


PairDep = Annotated[Pair, Depends(get_pair)]


def parse_time(name: str, value: str | None) -> int | None:
    """Parses an ISO 8601 (or epoch ms) query value, naming the parameter when it is bad."""
    if value is None or value.strip() == "":
        return None
    try:
        return parse_iso_utc(value)
    except (ValueError, OverflowError, OSError):
        raise BadParameter(
            name, f"{value!r} is not an ISO 8601 time such as 2025-08-01T00:00:00Z"
        ) from None
