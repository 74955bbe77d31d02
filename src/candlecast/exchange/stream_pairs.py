"""Kline events for many pairs: shards of up to 1,024 streams, changed live without drops."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.exchange.stream_connection import (
    DEFAULT_MAX_AGE_SECONDS,
    Connection,
    StreamOptions,
)
from candlecast.exchange.stream_decode import PairTracker
from candlecast.exchange.stream_events import (
    KlineClosed,
    KlineUpdate,
    PairState,
    StreamEvent,
    StreamObserver,
    StreamState,
)
from candlecast.exchange.stream_limits import TokenBucket
from candlecast.exchange.stream_limits import connect_limiter as binance_connect_limiter

log = logging.getLogger(__name__)

BINANCE_MAX_STREAMS = 1024
BINANCE_MAX_MESSAGES_PER_SECOND = 5.0


@dataclass(frozen=True, slots=True)
class _Failure:
    """A connection task died of a bug: re-raised to the consumer, never swallowed."""

    error: Exception


class PairStream:
    """Async iterator of kline events for many pairs, reconnecting each connection forever.

    Pairs fill connections of up to `max_streams_per_connection` streams (Binance: 1,024);
    more pairs open another connection, and every connect waits on a token bucket for
    Binance's 300 connections per 5 minutes per IP (pass one `connect_limiter` to several
    streams to share it). Adding or removing pairs sends SUBSCRIBE/UNSUBSCRIBE on the live
    connection, batched and paced under 5 messages per second, so other pairs never drop.

    Thread use: add_pairs, remove_pairs and resume_after may be called from any thread; off
    the stream's loop they are handed to it with call_soon_threadsafe and apply shortly
    after returning. Everything else runs on the loop that iterates the stream; from another
    thread, close it with `asyncio.run_coroutine_threadsafe(stream.close(), loop)`.
    """

    def __init__(
        self,
        *,
        ws_base_url: str,
        pairs: Iterable[Pair] = (),
        combined: bool = True,
        max_streams_per_connection: int = BINANCE_MAX_STREAMS,
        max_url_streams: int = 200,
        max_params_per_message: int = 200,
        messages_per_second: float = 4.0,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        idle_timeout_seconds: float = 60.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        open_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        observer: StreamObserver | None = None,
        connect_limiter: TokenBucket | None = None,
        queue_size: int = 10_000,
    ) -> None:
        if not 1 <= max_streams_per_connection <= BINANCE_MAX_STREAMS:
            raise ValueError(f"max_streams_per_connection must be 1..{BINANCE_MAX_STREAMS}")
        if not 0 < messages_per_second <= BINANCE_MAX_MESSAGES_PER_SECOND:
            raise ValueError("messages_per_second must be in (0, 5]: Binance drops faster senders")
        self._options = StreamOptions(
            ws_base_url=ws_base_url,
            combined=combined,
            max_streams_per_connection=max_streams_per_connection,
            max_url_streams=max(1, max_url_streams),
            max_params_per_message=max(1, max_params_per_message),
            messages_per_second=messages_per_second,
            max_age_seconds=max_age_seconds,
            idle_timeout_seconds=idle_timeout_seconds,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._observer = observer
        self._connect_limiter = connect_limiter or binance_connect_limiter()
        self._queue_size = queue_size
        # Guards the pair and connection tables against state() read from another thread.
        self._lock = threading.RLock()
        self._trackers: dict[Pair, PairTracker] = {}
        # Resume points given before their pair was added (callers resume, then add).
        self._resume_points: dict[Pair, int | None] = {}
        self._connections: list[Connection] = []
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[StreamEvent | _Failure | None] | None = None
        self._closing = False
        self._ids = itertools.count(1)
        self._add_now(tuple(pairs))

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        pairs: Iterable[Pair] | None = None,
        observer: StreamObserver | None = None,
        **options: Any,
    ) -> PairStream:
        """A stream for `pairs` (default: the configured ones); keyword options win."""
        chosen = settings.configured_pairs() if pairs is None else tuple(pairs)
        base = options.pop("ws_base_url", settings.binance_ws_url)
        return cls(ws_base_url=base, pairs=chosen, observer=observer, **options)

    # --- Pairs, from any thread -------------------------------------------------------

    @property
    def pairs(self) -> tuple[Pair, ...]:
        with self._lock:
            return tuple(self._trackers)

    def add_pairs(
        self, pairs: Iterable[Pair], resume_after: Mapping[Pair, int | None] | None = None
    ) -> None:
        """Starts streaming these pairs (already carried ones are ignored); any thread.

        `resume_after` maps a pair to its newest stored open_time, as resume_after() does.
        """
        chosen = tuple(pairs)
        for pair, open_time in (resume_after or {}).items():
            self.resume_after(pair, open_time)
        self._call_on_loop(self._add_now, chosen)

    def remove_pairs(self, pairs: Iterable[Pair]) -> None:
        """Stops streaming these pairs (unknown ones are ignored); any thread."""
        self._call_on_loop(self._remove_now, tuple(pairs))

    def resume_after(self, pair: Pair, open_time: int | None) -> None:
        """Skips the pair's closed candles at or before open_time (the newest one stored).

        For a pair not carried yet, the point is kept and applied when the pair is added.
        """
        self._call_on_loop(self._resume_now, pair, open_time)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            loop = self._loop
            if loop is None or loop.is_closed() or self._on_loop():
                fn(*args)  # nothing runs concurrently, or we are the loop: apply now
                return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            fn(*args)  # the loop closed meanwhile, so nothing else touches the tables

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _add_now(self, pairs: tuple[Pair, ...]) -> None:
        with self._lock:
            for pair in pairs:
                if pair in self._trackers:
                    continue
                tracker = PairTracker(pair)
                if pair in self._resume_points:
                    tracker.resume_after(self._resume_points.pop(pair))
                self._trackers[pair] = tracker
                self._connection_with_room().add(tracker.name, pair)

    def _remove_now(self, pairs: tuple[Pair, ...]) -> None:
        with self._lock:
            for pair in pairs:
                self._resume_points.pop(pair, None)
                tracker = self._trackers.pop(pair, None)
                if tracker is None:
                    continue
                for connection in self._connections:
                    if tracker.name in connection.desired:
                        connection.remove(tracker.name)
                        break

    def _resume_now(self, pair: Pair, open_time: int | None) -> None:
        with self._lock:
            tracker = self._trackers.get(pair)
            if tracker is None:
                self._resume_points[pair] = open_time
            else:
                tracker.resume_after(open_time)

    def _connection_with_room(self) -> Connection:
        limit = self._options.max_streams_per_connection
        for connection in self._connections:
            if len(connection.desired) < limit:
                return connection
        connection = Connection(
            len(self._connections),
            options=self._options,
            trackers=self._trackers,
            emit=self._emit,
            connect_limiter=self._connect_limiter,
            next_id=lambda: next(self._ids),
            sleep=self._sleep,
            rng=self._rng,
            observer=self._observer,
        )
        self._connections.append(connection)
        if self._queue is not None and self._on_loop():
            self._start(connection)
        return connection

    # --- Health -----------------------------------------------------------------------

    @property
    def state(self) -> StreamState:
        """A snapshot of every connection's and pair's health."""
        with self._lock:
            connections = tuple(c.snapshot() for c in self._connections)
            pairs: list[PairState] = []
            for c in self._connections:
                for name, pair in c.desired.items():
                    tracker = self._trackers.get(pair)
                    if tracker is None:
                        continue
                    pairs.append(
                        PairState(
                            pair=pair,
                            connection=c.index,
                            subscribed=name in c.subscribed,
                            last_closed_open_time=tracker.last_closed_open_time,
                            error=c.rejected.get(name),
                        )
                    )
        carrying = [c for c in connections if c.streams > 0] or list(connections[:1])
        errors = [c for c in connections if c.last_error is not None]
        latest_error = max(errors, key=lambda c: c.last_error_at or 0.0) if errors else None
        closes = [p.last_closed_open_time for p in pairs if p.last_closed_open_time is not None]
        since = [c.connected_since for c in carrying if c.connected_since is not None]
        seen = [c.last_message_at for c in connections if c.last_message_at is not None]
        return StreamState(
            url=(carrying[0].url or self._options.ws_base_url) if carrying else "",
            connected=bool(carrying) and all(c.connected for c in carrying),
            connected_since=max(since) if since else None,
            last_message_at=max(seen) if seen else None,
            last_closed_open_time=max(closes) if closes else None,
            connects=sum(c.connects for c in connections),
            reconnects=sum(c.reconnects for c in connections),
            last_error=latest_error.last_error if latest_error is not None else None,
            connections=connections,
            pairs=tuple(pairs),
        )

    # --- Iteration ----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Yields events from every connection until close(); Reconnected after each reconnect."""
        queue: asyncio.Queue[StreamEvent | _Failure | None] = asyncio.Queue(self._queue_size)
        with self._lock:
            if self._queue is not None:
                raise RuntimeError("this kline stream is already being iterated")
            self._loop, self._queue = asyncio.get_running_loop(), queue
            for connection in self._connections:
                self._start(connection)
        try:
            while not self._closing:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            await self._stop_connections()
            with self._lock:
                self._loop, self._queue = None, None

    async def close(self) -> None:
        """Stops the iterator at its next step and closes every connection."""
        self._closing = True
        await self._stop_connections()
        queue = self._queue
        if queue is not None:
            with suppress(asyncio.QueueFull):
                queue.put_nowait(None)  # a full queue is drained by a consumer that sees _closing

    def _start(self, connection: Connection) -> None:
        if connection.index not in self._tasks:
            task = asyncio.get_running_loop().create_task(self._run(connection))
            self._tasks[connection.index] = task

    async def _run(self, connection: Connection) -> None:
        try:
            await connection.run()
        except Exception as exc:
            log.exception("kline stream connection %d failed", connection.index)
            queue = self._queue
            if queue is not None:
                await queue.put(_Failure(exc))

    async def _emit(self, event: StreamEvent) -> None:
        queue = self._queue
        if queue is not None:
            await queue.put(event)  # a slow consumer holds back reading, never drops events

    async def _stop_connections(self) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
            self._tasks.clear()
            connections = list(self._connections)
        for connection in connections:
            await connection.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _decode(self, raw: str | bytes, connection: int = 0) -> KlineClosed | KlineUpdate | None:
        """Decodes one message as the given connection would (for tests of the decoder)."""
        with self._lock:
            if not self._connections:
                return None
            return self._connections[connection].decode(raw)
