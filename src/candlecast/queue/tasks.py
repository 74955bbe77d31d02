"""The queue's tasks: each per-pair operation of the use-case layer as `candlecast.<operation>`,
and the periodic ones that hand out every pair's ticks, retry the jobs of dead workers and forget
old jobs. The operations are the same as in embedded mode; only their dispatch differs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from procrastinate import App, JobContext
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from candlecast.config import Settings
from candlecast.domain import (
    ConfigError,
    ExchangeRejected,
    IPBanned,
    JobAlreadyRunning,
    NotFound,
    Pair,
    RateLimited,
    UnknownPair,
)
from candlecast.queue.client import SYNC_QUEUE, TASKS, QueueClient, task_name
from candlecast.scheduler import periodic_operations, ticks_between
from candlecast.usecases import PairOperations

log = logging.getLogger(__name__)

# A worker silent this long has died (or lost the database): its running jobs start again
# elsewhere. Workers beat every WORKER_HEARTBEAT_SECONDS.
STALLED_AFTER_SECONDS = 15
# Dead workers' rows go only long after their jobs were retried (the retry needs the row).
PRUNE_WORKERS_AFTER_SECONDS = 3600
RETRY_STALLED_EVERY_SECONDS = 5
# Attempts before a job is left failed; bans and rate limits wait as told, up to this many times.
MAX_ATTEMPTS = 5
MAX_PAUSES = 50
# Errors that another attempt cannot mend.
FINAL_ERRORS: tuple[type[Exception], ...] = (ConfigError, UnknownPair, NotFound, ExchangeRejected)


@dataclass
class WorkerParts:
    """What the tasks of one worker process run with."""

    operations: PairOperations
    client: QueueClient
    settings: Settings
    # Records a failed job's error for the Jobs page and `candlecast jobs`.
    record_error: Callable[[int, str], None]


class PairTaskRetry(BaseRetryStrategy):
    """Backs off exponentially and gives up after MAX_ATTEMPTS; waits out a ban (418) or a rate
    limit (429) until the time the exchange gave, instead of retrying into a longer ban."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, IPBanned) and job.attempts < MAX_PAUSES:
            return RetryDecision(retry_at=datetime.fromtimestamp(exception.until_ms / 1000, UTC))
        if isinstance(exception, RateLimited) and job.attempts < MAX_PAUSES:
            return RetryDecision(retry_in={"seconds": max(1, round(exception.retry_after))})
        if isinstance(exception, FINAL_ERRORS) or job.attempts + 1 >= MAX_ATTEMPTS:
            return None
        return RetryDecision(retry_in={"seconds": min(300, 2 ** (job.attempts + 1))})


def _parts(context: JobContext) -> WorkerParts:
    parts = context.additional_context["parts"]
    assert isinstance(parts, WorkerParts)
    return parts


def run_operation(parts: WorkerParts, operation: str, pair: Pair, **arguments: Any) -> None:
    """One operation on one pair, as a job runs it."""
    operations = parts.operations
    if operation != "evaluate" and not operations.is_followed(pair):
        log.info("%s %s: no longer followed; nothing to do", operation, pair)
        return
    try:
        if operation == "backfill":
            report = operations.backfill(pair, days=arguments.get("days")).report
            log.info(
                "%s backfill: %d candles inserted in %d calls",
                pair,
                report.written.inserted,
                report.calls,
            )
            if not operations.has_champion(pair):
                parts.client.defer("train", pair)
        elif operation == "ingest":
            operations.ingest(pair)
        elif operation == "reconcile":
            operations.reconcile(pair)
        elif operation == "forecast":
            operations.forecast(pair)
        elif operation == "train":
            operations.train(pair, days=arguments.get("days"), force=bool(arguments.get("force")))
        elif operation == "evaluate":
            operations.evaluate(
                pair,
                start=arguments.get("start"),
                end=arguments.get("end"),
                folds=int(arguments.get("folds") or 6),
                train_days=float(arguments.get("train_days") or parts.settings.train_days),
            )
        else:
            raise ConfigError(f"unknown operation {operation!r}")
    except JobAlreadyRunning as exc:
        # Another process runs it (the CLI, an older tick): the work is being done.
        log.info("%s %s skipped: %s", operation, pair, exc)


def dispatch(parts: WorkerParts, start_seconds: float, end_seconds: float) -> int:
    """Queues every followed pair's ticks in (start, end], each at its instant, and the first
    backfill of pairs never backfilled. Runs once per period across all processes (a periodic
    task), so each tick is queued once; a tick whose operation still waits for the pair joins
    it (as a missed tick would). Returns how many jobs were queued."""
    pending = parts.client.pending()
    waiting, running = pending["todo"], pending["doing"]
    queued = 0
    for entry in parts.operations.followed_entries():
        pair = entry.pair
        if entry.backfilled_at is None:
            # Start-up: backfill, then the first model (the backfill task queues it).
            key = (task_name("backfill"), pair.symbol, pair.interval)
            if key not in waiting and key not in running:
                parts.client.defer("backfill", pair, check_waiting=False)
                queued += 1
            continue
        for periodic in periodic_operations(parts.settings, str(pair)):
            if (task_name(periodic.operation), pair.symbol, pair.interval) in waiting:
                continue
            ticks = ticks_between(periodic, start_seconds, end_seconds)
            if ticks:
                at_ms = round(ticks[0] * 1000)
                parts.client.defer(periodic.operation, pair, at_ms=at_ms, check_waiting=False)
                queued += 1
    return queued


def register_tasks(app: App, settings: Settings) -> None:
    """Registers the operations and the periodic tasks on `app` (a worker's)."""
    retry = PairTaskRetry()
    for operation, spec in TASKS.items():
        app.task(name=task_name(operation), queue=spec.queue, pass_context=True, retry=retry)(
            _operation_task(operation)
        )

    every = settings.dispatch_every_seconds

    @app.periodic(cron=f"* * * * * */{every}")
    @app.task(name="candlecast.dispatch", queue=SYNC_QUEUE, pass_context=True)
    def dispatch_ticks(context: JobContext, timestamp: int) -> None:
        queued = dispatch(_parts(context), timestamp, timestamp + every)
        if queued:
            log.debug("queued %d job(s) for ticks after %s", queued, timestamp)

    @app.periodic(cron=f"* * * * * */{RETRY_STALLED_EVERY_SECONDS}")
    @app.task(name="candlecast.retry_stalled", queue=SYNC_QUEUE, pass_context=True)
    async def retry_stalled(context: JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS)
        for job in stalled:
            log.warning(
                "job %s (%s %s) was running on a worker that stopped beating; retrying it",
                job.id,
                job.task_name,
                job.task_kwargs,
            )
            await manager.retry_job(job)
        await manager.prune_stalled_workers(PRUNE_WORKERS_AFTER_SECONDS)

    keep_hours = settings.queue_keep_hours

    @app.periodic(cron="17 * * * *")
    @app.task(name="candlecast.prune_queue", queue=SYNC_QUEUE, pass_context=True)
    async def prune_queue(context: JobContext, timestamp: int) -> None:
        await context.app.job_manager.delete_old_jobs(nb_hours=keep_hours, include_failed=True)


def _operation_task(operation: str) -> Callable[..., None]:
    def task(context: JobContext, symbol: str, interval: str, **arguments: Any) -> None:
        parts = _parts(context)
        try:
            run_operation(parts, operation, Pair(symbol, interval), **arguments)
        except Exception as exc:
            job_id = context.job.id
            if job_id is not None:
                parts.record_error(job_id, f"{type(exc).__name__}: {exc}")
            raise

    task.__name__ = f"{operation}_task"
    return task
