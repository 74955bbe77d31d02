"""What every route reaches through the request: services, runtime, clock, trainer, caches."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Query, Request

from candlecast.api.background import BackgroundJobs
from candlecast.api.pairs_view import (
    QUEUE_SUMMARY_TTL_SECONDS,
    SUMMARY_TTL_SECONDS,
    PairSummaries,
)
from candlecast.api.series_cache import TrailingColumns, warm
from candlecast.api.shaping import MAX_WINDOW_DAYS
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import (
    InvalidInterval,
    InvalidSymbol,
    Pair,
    PairNotTracked,
    parse_iso_utc,
    validate_interval,
    validate_symbol,
)
from candlecast.jobs.common import DAY_MS
from candlecast.queue.client import QueueClient, uses_queue
from candlecast.runtime import Runtime
from candlecast.store.leases import lease_owners
from candlecast.stream_leases import shard_of
from candlecast.usecases import PairOperations

log = logging.getLogger(__name__)


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


class FollowedPairs:
    """The followed pairs as the routes see them: re-read at most once a second, and at once
    after this process changed them."""

    def __init__(self, operations: PairOperations, *, ttl: float = 1.0) -> None:
        self._operations = operations
        self._ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._pairs: tuple[Pair, ...] = ()
        operations.after_pairs_change.append(self.invalidate)

    def invalidate(self) -> None:
        """Forgets the held list: the next request reads the table."""
        with self._lock:
            self._read_at = -1e9

    def current(self) -> tuple[Pair, ...]:
        """The followed pairs in order."""
        now = time.monotonic()
        with self._lock:
            if now - self._read_at < self._ttl:
                return self._pairs
        pairs = tuple(self._operations.followed())
        with self._lock:
            self._pairs, self._read_at = pairs, now
        return pairs

    def default(self) -> Pair:
        """The first followed pair (else the first configured one)."""
        pairs = self.current()
        return pairs[0] if pairs else self._operations.settings.configured_pairs()[0]


@dataclass
class ApiContext:
    """The app's long-lived state; one per create_app."""

    services: Services
    runtime: Runtime
    trainer: Trainer
    # The use-case layer: every route that changes something calls it, and nothing else.
    operations: PairOperations
    # The exchange's clock by default (see create_app): ages never depend on the host's clock.
    clock: Callable[[], int] = wall_clock_ms
    background: BackgroundJobs = field(init=False)
    series_cache: ResponseCache = field(default_factory=lambda: ResponseCache(size=16))
    # The trailing window of columns behind /api/series, updated incrementally, within
    # CANDLECAST_SERIES_CACHE_MB across pairs.
    columns: TrailingColumns = field(init=False)
    # Live-ish answers (forecast, health) are re-read at most once a second per key.
    fast_cache: ResponseCache = field(default_factory=lambda: ResponseCache(size=64, ttl=1.0))

    pairs: FollowedPairs = field(init=False)
    # PostgreSQL: defers tasks to the queue (POST /api/train?wait=false); None on SQLite.
    queue: QueueClient | None = field(init=False)
    # Each pair's stored summary for /api/pairs, re-read after the pair's refresh.
    pair_summaries: PairSummaries = field(init=False)

    def __post_init__(self) -> None:
        self.background = BackgroundJobs(self.services.engine)
        self.pairs = FollowedPairs(self.operations)
        settings = self.services.settings
        self.queue = QueueClient(settings, self.services.engine) if uses_queue(settings) else None
        self.pair_summaries = PairSummaries(
            self.services.engine,
            ttl=QUEUE_SUMMARY_TTL_SECONDS if self.queue is not None else SUMMARY_TTL_SECONDS,
        )
        self.columns = TrailingColumns(
            span_ms=(MAX_WINDOW_DAYS + 1) * DAY_MS,
            max_bytes=self.services.settings.series_cache_mb * 2**20,
        )
        self.operations.after_refresh.append(self.pair_summaries.refreshed)
        self.operations.after_refresh.append(self._columns_after_refresh)

    def warm_columns(self, pair: Pair) -> None:
        """Brings the pair's held chart columns up to date (reading them if not held), so
        that the next chart request only slices and encodes."""
        try:
            with self.services.engine.connect() as connection:
                warm(
                    self.columns,
                    connection,
                    symbol=pair.symbol,
                    interval=pair.interval,
                    days=MAX_WINDOW_DAYS,
                )
        except Exception:
            # Only a cache: the next chart request reads what it needs itself.
            log.exception("could not warm the chart columns of %s", pair)

    def _columns_after_refresh(self, pair: Pair) -> None:
        # Only pairs someone looked at are kept current; the others load on their first view.
        if self.columns.holds(pair.symbol, pair.interval):
            self.warm_columns(pair)

    def streamed_pairs(self, pairs: list[Pair]) -> frozenset[Pair]:
        """The pairs on the real-time stream now: this process's own, or on PostgreSQL those
        of the stream shards some process holds (read at most once a second)."""
        if self.queue is None:
            return self.runtime.streamed_pairs
        shards = self.services.settings.stream_shards

        owned: frozenset[int] | None = self.fast_cache.get(("stream-shards",))
        if owned is None:
            owners = lease_owners(self.services.engine, range(shards))
            owned = frozenset(shard for shard, owner in owners.items() if owner is not None)
            self.fast_cache.put(("stream-shards",), owned)
        return frozenset(pair for pair in pairs if shard_of(pair, shards) in owned)

    def is_tracked(self, pair: Pair) -> bool:
        """Whether this installation follows the pair."""
        return pair in self.pairs.current()


async def get_context(request: Request) -> ApiContext:
    """The ApiContext of the app serving this request."""
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(get_context)]


async def get_pair(
    context: Context,
    symbol: Annotated[
        str | None, Query(description="Symbol, e.g. BTCUSDT (default: the first followed pair's)")
    ] = None,
    interval: Annotated[
        str | None,
        Query(description="Interval, e.g. 5m (default: the first followed pair's)"),
    ] = None,
) -> Pair:
    """The request's pair, defaulting to the first followed one; 404 if it is not followed."""
    return resolve_pair(context, symbol, interval)


def parse_pair(context: ApiContext, symbol: str | None, interval: str | None) -> Pair:
    """Validates a symbol and interval, naming the bad one; a missing part is the default
    pair's."""
    default = context.pairs.default() if symbol is None or interval is None else None
    try:
        chosen_symbol = (
            default.symbol if default and symbol is None else validate_symbol(symbol or "")
        )
    except InvalidSymbol as exc:
        raise BadParameter("symbol", str(exc)) from None
    try:
        chosen_interval = (
            default.interval if default and interval is None else validate_interval(interval or "")
        )
    except InvalidInterval as exc:
        raise BadParameter("interval", str(exc)) from None
    return Pair(chosen_symbol, chosen_interval)


def resolve_pair(context: ApiContext, symbol: str | None, interval: str | None) -> Pair:
    """parse_pair, then PairNotTracked (404) unless the pair is followed."""
    pair = parse_pair(context, symbol, interval)
    if not context.is_tracked(pair):
        raise PairNotTracked(
            f"{pair} is not followed by this service; add it with "
            f"`candlecast pairs add {pair}` or POST /api/pairs"
        )
    return pair


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
