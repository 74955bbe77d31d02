"""Wiring of jobs to times (APScheduler), with each tick run exactly once across replicas.

Ticks are aligned to multiples of their period since the epoch (plus the job's offset), so every
replica fires at the same instants; the first replica to claim (job, tick) in the database runs
it, the rest skip. The operation a job runs holds its own lock, so a long run never overlaps the
next tick, here or in another replica. Jobs come and go while it runs, as pairs do.
"""

from __future__ import annotations

import logging
import math
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from candlecast.config import Settings
from candlecast.domain import CandlecastError, JobAlreadyRunning, iso_utc
from candlecast.jobs.common import now_ms
from candlecast.runtime import Runtime
from candlecast.store import ticks
from candlecast.store.db import write_transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """A job body to run every `every_seconds`, `offset_seconds` after each multiple of it.

    `name` is unique per scheduler (e.g. `train:BTCUSDT:5m`); `kind` and `pair` say what it is
    for the Jobs page."""

    name: str
    every_seconds: int
    body: Callable[[], object]
    offset_seconds: float = 0.0
    kind: str = ""
    pair: str | None = None


def stagger_seconds(key: str, every_seconds: int) -> float:
    """A stable offset in [0, every) for `key`: every replica computes the same one, and many
    pairs' jobs of one period spread over it instead of firing at the same instant."""
    return (zlib.crc32(key.encode()) % 1000) / 1000 * every_seconds


# Ingest ticks spread over at most this many seconds after each period boundary.
INGEST_SPREAD_SECONDS = 30.0


@dataclass(frozen=True)
class Periodic:
    """One of a pair's periodic operations: every `every_seconds`, `offset_seconds` after each
    multiple of it."""

    operation: str
    every_seconds: int
    offset_seconds: float


def periodic_operations(settings: Settings, key: str) -> tuple[Periodic, ...]:
    """A pair's periodic operations (ingest, train, reconcile) with their stable offsets: ingest
    spread over 30 s, train and reconcile over their whole period. Every process computes the
    same ones, whether it schedules them itself (embedded) or hands them to the queue."""
    ingest_spread = max(1, int(min(float(settings.ingest_every_seconds), INGEST_SPREAD_SECONDS)))
    return (
        Periodic("ingest", settings.ingest_every_seconds, stagger_seconds(key, ingest_spread)),
        Periodic(
            "train",
            settings.train_every_seconds,
            stagger_seconds(key, settings.train_every_seconds),
        ),
        Periodic(
            "reconcile",
            settings.reconcile_every_seconds,
            stagger_seconds(key, settings.reconcile_every_seconds),
        ),
    )


def ticks_between(periodic: Periodic, start_seconds: float, end_seconds: float) -> list[float]:
    """The instants (epoch s) of the operation's ticks in (start, end]."""
    every, offset = periodic.every_seconds, periodic.offset_seconds
    first = math.floor((start_seconds - offset) / every) + 1
    last = math.floor((end_seconds - offset) / every)
    return [k * every + offset for k in range(first, last + 1)]


def tick_of(now_seconds: float, every_seconds: int, offset_seconds: float = 0.0) -> int:
    """The scheduled instant (ms) a firing belongs to: the nearest period multiple + offset."""
    shifted = round((now_seconds - offset_seconds) / every_seconds) * every_seconds
    return int((shifted + offset_seconds) * 1000)


class Scheduler:
    """APScheduler in a background thread, running ScheduledJobs once per tick across replicas."""

    def __init__(
        self,
        *,
        engine: Engine,
        runtime: Runtime,
        jobs: list[ScheduledJob],
        max_workers: int = 8,
    ) -> None:
        self._engine = engine
        self._runtime = runtime
        self._jobs = list(jobs)
        self._holder = f"{socket.gethostname()}:{id(self)}"
        # Bounded: with many pairs, the jobs due at once queue here (trainings queue further on
        # in the training pool); the database and the exchange's budget bound them anyway.
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(2, max_workers))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=UTC,
        )
        self._meta: dict[str, ScheduledJob] = {}

    def start(self) -> None:
        """Schedules every job at aligned instants and starts the background thread."""
        for job in self._jobs:
            self.add(job)
        self._scheduler.start()
        self._runtime.update(scheduler_enabled=True, scheduler_running=True)
        self._publish_next_runs()

    def add(self, job: ScheduledJob) -> None:
        """Schedules a job (replacing one of the same name), also while running."""
        now = time.time()
        periods = math.ceil((now - job.offset_seconds) / job.every_seconds)
        first = periods * job.every_seconds + job.offset_seconds
        self._meta[job.name] = job
        self._scheduler.add_job(
            self._run_tick,
            IntervalTrigger(
                seconds=job.every_seconds,
                start_date=datetime.fromtimestamp(first, tz=UTC),
                timezone=UTC,
            ),
            args=[job],
            id=job.name,
            name=job.name,
            replace_existing=True,
        )
        if self._scheduler.running:
            self._publish_next_runs()

    def remove(self, name: str) -> None:
        """Unschedules a job; a run in progress finishes."""
        self._meta.pop(name, None)
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)
        if self._scheduler.running:
            self._publish_next_runs()

    def shutdown(self) -> None:
        """Stops scheduling; running job threads are not waited for (their work is atomic)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self._runtime.update(scheduler_running=False, next_runs=[])

    def _publish_next_runs(self) -> None:
        upcoming = []
        for job in self._scheduler.get_jobs():
            when = job.next_run_time
            meta = self._meta.get(job.id)
            if when is not None and meta is not None:
                upcoming.append(
                    {
                        "name": meta.kind or meta.name,
                        "pair": meta.pair,
                        "next_run": iso_utc(int(when.timestamp() * 1000)),
                    }
                )
        self._runtime.update(next_runs=sorted(upcoming, key=lambda item: item["next_run"]))

    def _run_tick(self, job: ScheduledJob) -> None:
        tick = tick_of(time.time(), job.every_seconds, job.offset_seconds)
        try:
            with write_transaction(self._engine) as connection:
                claimed = ticks.claim(
                    connection, name=job.name, tick=tick, holder=self._holder, claimed_at=now_ms()
                )
            if not claimed:
                log.debug("%s tick %s already claimed by another replica", job.name, tick)
                return
            job.body()
        except JobAlreadyRunning:
            log.info("%s still running from an earlier tick; skipping %s", job.name, iso_utc(tick))
        except CandlecastError as exc:
            log.warning("%s failed: %s", job.name, exc)
        except Exception:
            log.exception("%s failed unexpectedly", job.name)
        finally:
            self._publish_next_runs()
