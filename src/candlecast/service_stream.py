"""The real-time stream of a running service: one PairStream for every followed pair, whose
closed candles go to the use-case layer, and whose reconnects fill each affected pair's gap.

Closed candles are handled off the stream's loop on a few single-thread lanes, each pair always
on the same lane: pairs closing at the same instant run side by side, one pair's candles in
order."""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from typing import Any

from candlecast.bootstrap import Services
from candlecast.domain import (
    Candle,
    CandlecastError,
    JobAlreadyRunning,
    Pair,
    interval_ms,
    iso_utc,
)
from candlecast.exchange.stream import KlineClosed, KlineUpdate, PairStream, Reconnected
from candlecast.runtime import Runtime
from candlecast.store import candle_reads
from candlecast.usecases import PairOperations

log = logging.getLogger(__name__)

# Lanes handling closed candles; the database serializes writers anyway beyond a few.
CLOSE_LANES = 4
# Reconnects whose gaps are filled at once (each pair's fill is a few REST calls).
GAP_FILL_THREADS = 2
# How long a stop waits for closed candles already received to be handled.
LANE_DRAIN_SECONDS = 15.0


class StreamRunner:
    """Runs the stream in its own thread and event loop; add and remove pairs from any thread."""

    def __init__(
        self,
        services: Services,
        runtime: Runtime,
        operations: PairOperations,
        *,
        stopping: threading.Event,
    ) -> None:
        self.services = services
        self.runtime = runtime
        self.operations = operations
        self._stopping = stopping
        self._lock = threading.Lock()
        self._pairs: set[Pair] = set()
        self._stream: PairStream | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Gap fills after a reconnect run beside the lanes: REST calls must not hold up the
        # closed candles behind them, whose next forecasts are due before the next close.
        self._repairs = ThreadPoolExecutor(GAP_FILL_THREADS, "candlecast-gap")
        # The charts' predictions and the listeners after a close, once its forecast is in.
        self._after_close = ThreadPoolExecutor(1, "candlecast-after-close")
        self._lanes = [
            ThreadPoolExecutor(1, f"candlecast-close-{index}") for index in range(CLOSE_LANES)
        ]
        self._pending: set[Future[None]] = set()
        # PairStream keyword overrides (timeouts, backoff): tests shorten them to seconds.
        self.options: dict[str, Any] = {}

    # Pairs, from any thread ---------------------------------------------------------------

    def add(self, pairs: Iterable[Pair]) -> None:
        """Streams these pairs too, resuming after each one's newest stored candle."""
        chosen = list(pairs)
        with self._lock:
            self._pairs.update(chosen)
            stream = self._stream
        if stream is not None:
            self._resume(stream, chosen)
            stream.add_pairs(chosen)

    def remove(self, pairs: Iterable[Pair]) -> None:
        """Stops streaming these pairs; the others stay subscribed."""
        chosen = list(pairs)
        with self._lock:
            self._pairs.difference_update(chosen)
            stream = self._stream
        if stream is not None:
            stream.remove_pairs(chosen)
        for pair in chosen:
            self.runtime.set_live_candle(pair, None)

    def close(self) -> None:
        """Closes the stream from another thread; run() then returns."""
        loop, stream = self._loop, self._stream
        if stream is not None and loop is not None and not loop.is_closed():
            closing = stream.close()
            try:
                asyncio.run_coroutine_threadsafe(closing, loop)
            except RuntimeError:
                closing.close()  # the loop closed meanwhile: the stream is down already
        # Closed candles already received are stored (and their gaps filled) before stopping:
        # they will not come again on the stream.
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=LANE_DRAIN_SECONDS)
        for lane in [*self._lanes, self._repairs, self._after_close]:
            lane.shutdown(wait=False, cancel_futures=True)

    def _resume(self, stream: PairStream, pairs: Iterable[Pair]) -> None:
        with self.services.engine.connect() as connection:
            for pair in pairs:
                newest = candle_reads.last_open_time(
                    connection, symbol=pair.symbol, interval=pair.interval
                )
                stream.resume_after(pair, newest)

    # The stream thread ----------------------------------------------------------------------

    def run(self) -> None:
        """The stream thread's body: consumes events until stopped."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._consume())
        except Exception:
            log.exception("the kline stream stopped; REST ingest continues")
        finally:
            self.runtime.update(stream_connected=False, streamed_pairs=frozenset())
            loop.close()

    async def _consume(self) -> None:
        with self._lock:
            initial = sorted(self._pairs)
            stream = PairStream.from_settings(
                self.services.settings,
                pairs=initial,
                observer=self.services.metrics,
                **self.options,
            )
            self._stream = stream
        self._resume(stream, initial)
        watcher = asyncio.create_task(self._watch(stream))
        try:
            async for event in stream:
                if self._stopping.is_set():
                    break
                if isinstance(event, KlineClosed):
                    self._submit(self._lane_of(event.pair), self._on_closed, event.candle)
                elif isinstance(event, KlineUpdate):
                    self._on_update(event.candle)
                elif isinstance(event, Reconnected):
                    log.info(
                        "stream reconnected after %.1f s (%s); fetching the gap of %d pair(s)",
                        event.down_seconds,
                        event.reason,
                        len(event.pairs),
                    )
                    self.fill_gaps(event.pairs)
        finally:
            watcher.cancel()
            await stream.close()

    async def _watch(self, stream: PairStream) -> None:
        while True:
            state = stream.state
            last = state.last_closed_open_time
            up = {c.index for c in state.connections if c.connected}
            streamed = frozenset(p.pair for p in state.pairs if p.subscribed and p.connection in up)
            self.runtime.update(
                streamed_pairs=streamed,
                stream_connected=state.connected,
                stream_detail={
                    "url": state.url,
                    "connects": state.connects,
                    "reconnects": state.reconnects,
                    "connections": len(state.connections),
                    "pairs": len(state.pairs),
                    "last_error": state.last_error,
                    "last_closed_open_time": iso_utc(last) if last is not None else None,
                },
            )
            await asyncio.sleep(1.0)

    def _lane_of(self, pair: Pair) -> ThreadPoolExecutor:
        return self._lanes[zlib.crc32(str(pair).encode()) % len(self._lanes)]

    def _submit(
        self, executor: ThreadPoolExecutor, work: Callable[..., None], *args: object
    ) -> None:
        try:
            future = executor.submit(work, *args)
        except RuntimeError:
            return  # stopping: the lanes take no more work
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _on_update(self, candle: Candle) -> None:
        self.runtime.set_live_candle(Pair(candle.symbol, candle.interval), candle)

    def _caught_up(self, pair: Pair) -> bool:
        """Whether the store holds the pair's last candle closed by the exchange's clock (a pair
        with nothing stored yet counts as caught up: its backfill, not a gap fill, fetches it)."""
        step = interval_ms(pair.interval)
        last_closed = self.operations.parts.exchange_now() // step * step - step
        with self.services.engine.connect() as connection:
            newest = candle_reads.last_open_time(
                connection, symbol=pair.symbol, interval=pair.interval
            )
        return newest is None or newest >= last_closed

    def _following(self, pair: Pair) -> bool:
        with self._lock:
            return pair in self._pairs

    def _on_closed(self, candle: Candle) -> None:
        pair = Pair(candle.symbol, candle.interval)
        if not self._following(pair) or self._stopping.is_set():
            return  # removed meanwhile: its work has stopped
        try:
            self.operations.on_closed_candle(candle, defer=self._defer)
            self.runtime.set_live_candle(pair, None)
        except CandlecastError as exc:
            when = iso_utc(candle.open_time)
            log.warning("%s: could not process the closed candle %s: %s", pair, when, exc)
        except Exception:
            when = iso_utc(candle.open_time)
            log.exception("%s: could not process the closed candle %s", pair, when)

    def _defer(self, work: Callable[[], None]) -> None:
        # Stopping: the next refresh materializes what this one would have.
        with suppress(RuntimeError):
            self._after_close.submit(work)

    def fill_gaps(self, pairs: Iterable[Pair]) -> None:
        """After a reconnect (or a shard taken over from another process), fetches over REST
        the candles of these pairs that closed while nobody streamed them (in the background,
        beside the lanes)."""
        self._submit(self._repairs, self._fill_gaps, list(pairs))

    def _fill_gaps(self, pairs: list[Pair]) -> None:
        # A reconnect often follows a suspended host or a stepped clock: the exchange's clock is
        # measured again first (one light request), as a stale offset would take a close that
        # was missed for one not yet due, and that candle would come only with the next ingest.
        try:
            self.services.exchange_time()
            measured = True
        except CandlecastError as exc:
            log.warning("could not read the exchange's clock after a reconnect: %s", exc)
            measured = False
        for pair in pairs:
            self._fill_gap(pair, measured)

    def _fill_gap(self, pair: Pair, clock_measured: bool) -> None:
        if not self._following(pair) or self._stopping.is_set():
            return
        try:
            if clock_measured and self._caught_up(pair):
                return  # a short drop: no candle closed meanwhile
            self.operations.ingest(pair)
        except JobAlreadyRunning:
            log.debug("%s: an ingest already runs; it fills the gap", pair)
        except CandlecastError as exc:
            log.warning("%s: gap fill after reconnect failed: %s", pair, exc)
        except Exception:
            log.exception("%s: gap fill after reconnect failed", pair)
