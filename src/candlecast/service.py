"""The running service: every followed pair's start-up (backfill, first model, forecast), its
scheduled jobs and its place on the real-time stream, kept in step with the pairs table while
it runs. All the work itself is the use-case layer's (`usecases.PairOperations`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from candlecast.bootstrap import Services
from candlecast.domain import CandlecastError, ExchangeError, JobAlreadyRunning, Pair
from candlecast.hints import retry_delay_seconds
from candlecast.jobs.common import now_ms
from candlecast.jobs.isolated import TrainingPool
from candlecast.runtime import Runtime
from candlecast.scheduler import ScheduledJob, Scheduler, periodic_operations
from candlecast.service_stream import StreamRunner
from candlecast.usecases import PairOperations

if TYPE_CHECKING:
    from candlecast.service_queue import QueueRunner

log = logging.getLogger(__name__)

# How often the pairs table is re-read for changes made by another process (the CLI).
PAIRS_POLL_SECONDS = 5.0
# Start-ups backfilling at once; the shared weight governor paces their requests anyway.
STARTUP_THREADS = 4


@dataclass(frozen=True)
class QueueOptions:
    """How this process takes part in the task queue (PostgreSQL): which queues it works on
    (None: all) and how many sync jobs it runs at once."""

    queues: list[str] | None
    concurrency: int


class Service:
    """Owns the scheduler, the stream and the pairs' start-ups in one process."""

    def __init__(
        self,
        services: Services,
        runtime: Runtime,
        operations: PairOperations,
        *,
        scheduler: bool,
        training: TrainingPool | None = None,
        queue: QueueOptions | None = None,
    ) -> None:
        self.services = services
        self.runtime = runtime
        self.operations = operations
        self.settings = services.settings
        # The warm training children, shared by the scheduled trainings and the API's.
        self.training = training or services.training
        self._scheduler_enabled = scheduler
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._scheduler: Scheduler | None = None
        self._active: set[Pair] = set()
        self._active_lock = threading.Lock()
        self._startups: ThreadPoolExecutor | None = None
        self._first_trainings: ThreadPoolExecutor | None = None
        self.stream = StreamRunner(services, runtime, operations, stopping=self._stop)
        # PostgreSQL: the task queue runs the work; this process streams the shards it holds.
        self.queue: QueueRunner | None = None
        if scheduler and queue is not None:
            from candlecast.service_queue import QueueRunner

            self.queue = QueueRunner(
                services,
                operations,
                self.stream,
                queues=queue.queues,
                concurrency=queue.concurrency,
                on_change=self._wake.set,
            )

    @property
    def stream_options(self) -> dict[str, Any]:
        """PairStream keyword overrides (timeouts, backoff): tests shorten them to seconds."""
        return self.stream.options

    @stream_options.setter
    def stream_options(self, options: dict[str, Any]) -> None:
        self.stream.options = dict(options)

    def run_stream(self) -> None:
        """Streams the followed pairs in this thread until stopped (the stream alone)."""
        self.stream.add(self.operations.followed())
        self.stream.run()

    @property
    def after_refresh(self) -> list[Callable[[Pair], None]]:
        """Hooks told after every refresh of a pair."""
        return self.operations.after_refresh

    def active_pairs(self) -> list[Pair]:
        """The pairs this service works on now."""
        with self._active_lock:
            return sorted(self._active)

    def start(self) -> None:
        """Starts every followed pair's start-up, the stream and the pairs watcher."""
        if not self._scheduler_enabled:
            return
        self.runtime.update(scheduler_enabled=True, stream_enabled=self.settings.stream)
        if self.queue is not None:
            if self.queue.trains:
                self.training.start()
            self.operations.after_pairs_change.append(self._wake.set)
            self.queue.start()
            # The queue's workers are this process's scheduler: /api/health reads this.
            self.runtime.update(scheduler_running=True)
            self._sync_pairs()
            self._spawn("candlecast-pairs", self._watch_pairs)
            if self.settings.stream:
                self._spawn("candlecast-stream", self.stream.run)
            return
        self._startups = ThreadPoolExecutor(STARTUP_THREADS, "candlecast-startup")
        self._first_trainings = ThreadPoolExecutor(
            self.settings.train_workers, "candlecast-first-train"
        )
        # Warm now: the start-up sequence trains soon, and the imports then cost nothing.
        self.training.start()
        self._scheduler = Scheduler(
            engine=self.services.engine, runtime=self.runtime, jobs=[], max_workers=8
        )
        self._scheduler.start()
        self.operations.after_pairs_change.append(self._wake.set)
        self._sync_pairs()
        self._spawn("candlecast-pairs", self._watch_pairs)
        if self.settings.stream:
            self._spawn("candlecast-stream", self.stream.run)

    def stop(self) -> None:
        """Stops everything: no new work starts, training children end, threads are joined."""
        self._stop.set()
        self._wake.set()
        if self._scheduler is not None:
            self._scheduler.shutdown()
        if self.queue is not None:
            self.queue.stop()
        # The stream first: stopping a training waits for its child, and meanwhile the stream
        # thread may end and close its loop.
        self.stream.close()
        stopped = self.training.stop()
        if stopped:
            log.info(
                "stopped %d training process(es); the previous champion keeps serving", stopped
            )
        for pool in (self._startups, self._first_trainings):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=15)
        self.runtime.update(scheduler_running=False, stream_connected=False)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # The followed pairs ---------------------------------------------------------------------

    def _watch_pairs(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(PAIRS_POLL_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._sync_pairs()
            except Exception:
                log.exception("could not read the followed pairs; retrying")

    def _sync_pairs(self) -> None:
        """Starts the pairs newly followed and stops those no longer followed."""
        followed = self.operations.followed()
        if self.queue is not None:
            with self._active_lock:
                gone = self._active - set(followed)
                self._active = set(followed)
            for pair in gone:
                self.runtime.pairs.forget(pair)
            self.queue.sync_pairs(followed)
            return
        with self._active_lock:
            added = [pair for pair in followed if pair not in self._active]
            removed = [pair for pair in self._active if pair not in followed]
            self._active.difference_update(removed)
            self._active.update(added)
        for pair in removed:
            self._stop_pair(pair)
        if added:
            self.stream.add(added)
            for pair in added:
                log.info("%s: starting (backfill, first model, forecast)", pair)
                self.runtime.pairs.starting(pair, True)
                if self._startups is not None:
                    self._startups.submit(self._start_up, pair)

    def _is_active(self, pair: Pair) -> bool:
        with self._active_lock:
            return pair in self._active and not self._stop.is_set()

    def _stop_pair(self, pair: Pair) -> None:
        log.info("%s: no longer followed; its jobs and stream stop", pair)
        if self._scheduler is not None:
            for kind in ("ingest", "train", "reconcile"):
                self._scheduler.remove(f"{kind}:{pair}")
        self.stream.remove([pair])
        self.runtime.pairs.forget(pair)

    # Start-up --------------------------------------------------------------------------------

    def _start_up(self, pair: Pair) -> None:
        try:
            self._backfill_until_done(pair)
            if not self._is_active(pair):
                return
            if self.operations.has_champion(pair):
                self.operations.refresh(pair)
                log.info("%s is ready: candles, a model and a forecast are in place", pair)
                self._finish_start_up(pair)
            elif self._first_trainings is not None:
                # Trainings queue for the bounded pool; backfills of other pairs go on meanwhile.
                self._first_trainings.submit(self._first_model, pair)
        except Exception as exc:
            self._start_up_failed(pair, exc)

    def _first_model(self, pair: Pair) -> None:
        try:
            if not self._is_active(pair):
                return
            try:
                self.operations.train(pair)
            except JobAlreadyRunning:
                log.info("%s: another process is training the first model", pair)
            self.operations.refresh(pair)
            log.info("%s is ready: candles, a model and a forecast are in place", pair)
            self._finish_start_up(pair)
        except Exception as exc:
            self._start_up_failed(pair, exc)

    def _start_up_failed(self, pair: Pair, exc: Exception) -> None:
        if isinstance(exc, CandlecastError):
            log.error("%s: start-up did not complete: %s; the scheduled jobs retry", pair, exc)
        else:
            log.exception("%s: start-up failed; the scheduled jobs retry", pair)
        self.runtime.pairs.failed(pair, f"start-up: {exc}")
        self._finish_start_up(pair)

    def _finish_start_up(self, pair: Pair) -> None:
        self.runtime.pairs.starting(pair, False)
        if self._is_active(pair):
            self._schedule(pair)

    def _backfill_until_done(self, pair: Pair) -> None:
        """Backfills, retrying an unreachable exchange within 30 s (or when a ban ends), so a
        network that comes back is noticed long before the next ingest tick."""
        failures = 0
        while self._is_active(pair):
            try:
                result = self.operations.backfill(pair)
                report = result.report
                log.info(
                    "%s backfill: %d candles inserted in %d calls",
                    pair,
                    report.written.inserted,
                    report.calls,
                )
                return
            except JobAlreadyRunning:
                self._stop.wait(1.0)
            except ExchangeError as exc:
                delay = retry_delay_seconds(exc, attempt=failures, host_now_ms=now_ms())
                failures += 1
                self.runtime.update(next_retry_ms=now_ms() + int(delay * 1000))
                log.error(
                    "%s: start-up backfill could not reach the exchange: %s. %s Retrying in "
                    "%.0f s.",
                    pair,
                    exc,
                    self.runtime.exchange_hint,
                    delay,
                )
                self._stop.wait(delay)

    # Scheduling -------------------------------------------------------------------------------

    def _schedule(self, pair: Pair) -> None:
        """The pair's periodic jobs, each tick run once across replicas, spread over time."""
        if self._scheduler is None:
            return
        operations = self.operations
        bodies: dict[str, Callable[[], object]] = {
            "ingest": lambda: operations.ingest(pair),
            "train": lambda: operations.train(pair),
            "reconcile": lambda: operations.reconcile(pair),
        }
        key = str(pair)
        for periodic in periodic_operations(self.settings, key):
            kind = periodic.operation
            self._scheduler.add(
                ScheduledJob(
                    f"{kind}:{pair}",
                    periodic.every_seconds,
                    bodies[kind],
                    periodic.offset_seconds,
                    kind=kind,
                    pair=key,
                )
            )
