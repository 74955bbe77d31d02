"""The running service: start-up (backfill, train, forecast), the scheduled jobs, the real-time
stream, and a clean stop. `runner` builds it and adds the HTTP API for `serve`."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from candlecast.bootstrap import Services
from candlecast.domain import (
    CandlecastError,
    ExchangeError,
    JobAlreadyRunning,
    interval_ms,
    iso_utc,
)
from candlecast.exchange.stream import KlineClosed, KlineStream, KlineUpdate, Reconnected
from candlecast.hints import exchange_hint, retry_delay_seconds
from candlecast.jobs import isolated, pipeline, sync
from candlecast.jobs.common import now_ms
from candlecast.runtime import Runtime
from candlecast.scheduler import ScheduledJob, Scheduler
from candlecast.store import candle_reads, candle_rows, registry, ticks
from candlecast.store import candles as candle_store
from candlecast.store.db import write_transaction
from candlecast.store.locks import job_lock

log = logging.getLogger(__name__)
TICK_CLAIMS_KEPT_MS = 7 * 86_400_000


class Service:
    """Owns the scheduler, the stream thread and the start-up sequence of one process."""

    def __init__(
        self,
        services: Services,
        runtime: Runtime,
        *,
        scheduler: bool,
        training: isolated.TrainingPool | None = None,
    ) -> None:
        self.services = services
        self.runtime = runtime
        self.settings = services.settings
        # The warm training children, shared by the scheduled trainings and the API's.
        self.training = training or services.training
        self._scheduler_enabled = scheduler
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler: Scheduler | None = None
        self._stream: KlineStream | None = None
        self._stream_loop: asyncio.AbstractEventLoop | None = None
        # Called after every refresh, e.g. to bring the API's in-memory chart columns up to date.
        self.after_refresh: list[Callable[[], None]] = []
        # KlineStream keyword overrides (timeouts, backoff): tests shorten them to seconds.
        self.stream_options: dict[str, Any] = {}

    @property
    def symbol(self) -> str:
        """The configured symbol."""
        return self.settings.symbol

    @property
    def interval(self) -> str:
        """The configured interval."""
        return self.settings.interval

    def start(self) -> None:
        """Starts the start-up sequence, the stream and the scheduled jobs in the background."""
        if not self._scheduler_enabled:
            return
        self.runtime.update(scheduler_enabled=True, stream_enabled=self.settings.stream)
        # Warm now: the start-up sequence trains soon, and the imports then cost nothing.
        self.training.start()
        self._spawn("candlecast-startup", self._start_up)
        if self.settings.stream:
            self._spawn("candlecast-stream", self._run_stream)

    def stop(self) -> None:
        """Stops everything: no new work starts, training children end, threads are joined."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.shutdown()
        # The stream first: stopping a training waits for its child, and meanwhile the stream
        # thread may end and close its loop.
        loop = self._stream_loop
        if self._stream is not None and loop is not None and not loop.is_closed():
            closing = self._stream.close()
            try:
                asyncio.run_coroutine_threadsafe(closing, loop)
            except RuntimeError:
                closing.close()  # the loop closed meanwhile: the stream is down already
        stopped = self.training.stop()
        if stopped:
            log.info(
                "stopped %d training process(es); the previous champion keeps serving", stopped
            )
        for thread in self._threads:
            thread.join(timeout=15)
        self.runtime.update(scheduler_running=False, stream_connected=False)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # The jobs --------------------------------------------------------------------------

    def refresh(self) -> dict[str, Any]:
        """After new candles: score the ledger, forecast the next candle, materialize."""
        result = pipeline.refresh_after_candles(
            self.services.engine,
            exchange_clock=self.services.exchange_time,
            symbol=self.symbol,
            interval=self.interval,
        )
        self.runtime.bump()
        for hook in self.after_refresh:
            try:
                hook()
            except Exception:
                log.exception("a post-refresh hook failed")
        return result

    def ingest(self) -> None:
        """REST ingest: catch whatever the stream missed, and repair differences."""
        self._sync(sync.ingest)

    def reconcile(self) -> None:
        """Re-fetch the backfill window and repair every candle that differs or is missing."""
        self._sync(sync.reconcile)
        filled = pipeline.fill_unpredicted(
            self.services.engine, symbol=self.symbol, interval=self.interval
        )
        if filled:
            log.info("materialized %d prediction(s) for candles filled after the fact", filled)
        # Claims of ticks long past can never matter again; keep the table small.
        with write_transaction(self.services.engine) as connection:
            ticks.prune(connection, older_than=now_ms() - TICK_CLAIMS_KEPT_MS)

    def _sync(self, job: Callable[..., sync.SyncReport]) -> None:
        with self._exchange_watch(), self.services.exchange() as client:
            job(
                self.services.engine,
                client,
                days=self.settings.backfill_days,
                symbol=self.symbol,
                interval=self.interval,
            )
        self.refresh()

    @contextmanager
    def _exchange_watch(self) -> Iterator[None]:
        """Records in the runtime whether the exchange answered, what to do if it did not, and
        when the next attempt is due: for /api/health and the dashboard's banner."""
        try:
            yield
        except ExchangeError as exc:
            self.runtime.update(
                exchange_error=str(exc),
                exchange_hint=exchange_hint(exc, base_url=self.settings.binance_url),
                next_retry_ms=now_ms() + self.settings.ingest_every_seconds * 1000,
            )
            raise
        self.runtime.update(
            exchange_error=None, exchange_hint=None, next_retry_ms=None, exchange_reached=True
        )

    def train(self, *, force: bool = False) -> dict[str, Any]:
        """Train in a child process; a newly promoted champion serves from the next request."""
        details = self.training.train(
            self.settings,
            days=self.settings.train_days,
            force=force,
            symbol=self.symbol,
            interval=self.interval,
        )
        self.refresh()
        return details

    def _start_up(self) -> None:
        try:
            self._backfill_until_done()
            if self._stop.is_set():
                return
            with self.services.engine.connect() as connection:
                champion = registry.champion(connection, symbol=self.symbol, interval=self.interval)
            if champion is None:
                try:
                    self.train()
                except JobAlreadyRunning:
                    log.info("another replica is training the first model")
            self.refresh()
            log.info("candlecast is ready: candles, a model and a forecast are in place")
        except CandlecastError as exc:
            log.error("start-up did not complete: %s; the scheduled jobs will retry", exc)
        except Exception:
            log.exception("start-up failed; the scheduled jobs will retry")
        finally:
            if not self._stop.is_set():
                self._start_scheduler()

    def _backfill_until_done(self) -> None:
        """Backfills, retrying an unreachable exchange within 30 s (or when a ban ends), so a
        network that comes back is noticed long before the next ingest tick."""
        pair_lock = f"backfill:{self.settings.symbol}:{self.settings.interval}"
        failures = 0
        while not self._stop.is_set():
            try:
                with (
                    job_lock(self.services.engine, pair_lock),
                    self._exchange_watch(),
                    self.services.exchange() as client,
                ):
                    report = sync.backfill(
                        self.services.engine,
                        client,
                        days=self.settings.backfill_days,
                        symbol=self.symbol,
                        interval=self.interval,
                    )
                log.info("backfill: %d candles inserted in %d calls",
                         report.written.inserted, report.calls)  # fmt: skip
                self.runtime.bump()
                return
            except JobAlreadyRunning:
                self._stop.wait(1.0)
            except ExchangeError as exc:
                delay = retry_delay_seconds(exc, attempt=failures, host_now_ms=now_ms())
                failures += 1
                self.runtime.update(next_retry_ms=now_ms() + int(delay * 1000))
                log.error(
                    "start-up backfill could not reach the exchange: %s. %s Retrying in %.0f s.",
                    exc,
                    self.runtime.exchange_hint,
                    delay,
                )
                self._stop.wait(delay)

    def _start_scheduler(self) -> None:
        pair = f"{self.settings.symbol}:{self.settings.interval}"
        self._scheduler = Scheduler(
            engine=self.services.engine,
            runtime=self.runtime,
            jobs=[
                ScheduledJob("ingest", self.settings.ingest_every_seconds, self.ingest,
                             f"ingest:{pair}"),
                ScheduledJob("train", self.settings.train_every_seconds, self.train,
                             f"train-tick:{pair}"),
                ScheduledJob("reconcile", self.settings.reconcile_every_seconds,
                             self.reconcile, f"reconcile:{pair}"),
            ],
        )  # fmt: skip
        self._scheduler.start()

    # The real-time stream --------------------------------------------------------------

    def _run_stream(self) -> None:
        loop = asyncio.new_event_loop()
        self._stream_loop = loop
        try:
            loop.run_until_complete(self._consume_stream())
        except Exception:
            log.exception("the kline stream stopped; REST ingest continues")
        finally:
            self.runtime.update(stream_connected=False)
            loop.close()

    async def _consume_stream(self) -> None:
        stream = KlineStream.from_settings(
            self.settings, observer=self.services.metrics, **self.stream_options
        )
        self._stream = stream
        with self.services.engine.connect() as connection:
            stream.resume_after(
                candle_reads.last_open_time(connection, symbol=self.symbol, interval=self.interval)
            )
        watcher = asyncio.create_task(self._watch_stream(stream))
        try:
            async for event in stream:
                if self._stop.is_set():
                    break
                if isinstance(event, KlineClosed):
                    await asyncio.to_thread(self._on_closed, event)
                elif isinstance(event, KlineUpdate):
                    self.runtime.update(live_candle=event.candle)
                elif isinstance(event, Reconnected):
                    log.info("stream reconnected after %.1f s (%s); fetching the gap",
                             event.down_seconds, event.reason)  # fmt: skip
                    await asyncio.to_thread(self._after_reconnect)
        finally:
            watcher.cancel()
            await stream.close()

    async def _watch_stream(self, stream: KlineStream) -> None:
        while True:
            state = stream.state
            self.runtime.update(
                stream_connected=state.connected,
                stream_detail={
                    "url": state.url,
                    "connects": state.connects,
                    "reconnects": state.reconnects,
                    "last_error": state.last_error,
                    "last_closed_open_time": (
                        iso_utc(state.last_closed_open_time)
                        if state.last_closed_open_time is not None
                        else None
                    ),
                },
            )
            await asyncio.sleep(1.0)

    def _on_closed(self, event: KlineClosed) -> None:
        candle = event.candle
        try:
            with write_transaction(self.services.engine) as connection:
                newest = candle_reads.last_open_time(
                    connection, symbol=self.symbol, interval=self.interval
                )
                candle_store.upsert_candles(
                    connection,
                    rows=[candle_rows.row_from_candle(candle)],
                    source="ws",
                    fetched_at=now_ms(),
                    symbol=self.symbol,
                    interval=self.interval,
                )
            self.runtime.update(live_candle=None)
            if newest is not None and candle.open_time - newest > interval_ms(self.interval):
                # The stream only tells of candles closing while it listens: those that closed
                # between the last stored one and the connection come over REST, now.
                log.info("the stream skipped candles after %s; fetching them", iso_utc(newest))
                self.ingest()
            else:
                self.refresh()
        except CandlecastError as exc:
            log.warning("could not process the closed candle %s: %s",
                        iso_utc(candle.open_time), exc)  # fmt: skip
        except Exception:
            log.exception("could not process the closed candle %s", iso_utc(candle.open_time))

    def _after_reconnect(self) -> None:
        for job in (self.ingest, self.reconcile):
            try:
                job()
            except CandlecastError as exc:
                log.warning("gap fill after reconnect failed: %s", exc)
