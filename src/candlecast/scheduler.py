"""Wiring of jobs to times (APScheduler), with each tick run exactly once across replicas.

Ticks are aligned to multiples of their period since the epoch, so every replica fires at the
same instants; the first replica to claim (job, tick) in the database runs it, the rest skip.
A job lock stops a long run from overlapping the next tick, here or in another replica.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from candlecast.domain import CandlecastError, JobAlreadyRunning, iso_utc
from candlecast.jobs.common import now_ms
from candlecast.runtime import Runtime
from candlecast.store import ticks
from candlecast.store.db import write_transaction
from candlecast.store.locks import job_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """A job body to run every `every_seconds`, under the lock `lock_name`."""

    name: str
    every_seconds: int
    body: Callable[[], object]
    lock_name: str


def tick_of(now_seconds: float, every_seconds: int) -> int:
    """The scheduled instant (ms) a firing belongs to: the nearest multiple of the period."""
    return round(now_seconds / every_seconds) * every_seconds * 1000


class Scheduler:
    """APScheduler in a background thread, running ScheduledJobs once per tick across replicas."""

    def __init__(self, *, engine: Engine, runtime: Runtime, jobs: list[ScheduledJob]) -> None:
        self._engine = engine
        self._runtime = runtime
        self._jobs = jobs
        self._holder = f"{socket.gethostname()}:{id(self)}"
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(2, len(jobs)))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
            timezone=UTC,
        )

    def start(self) -> None:
        """Schedules every job at aligned instants and starts the background thread."""
        now = time.time()
        for job in self._jobs:
            first = math.ceil(now / job.every_seconds) * job.every_seconds
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
            )
        self._scheduler.start()
        self._runtime.update(scheduler_enabled=True, scheduler_running=True)
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
            if when is not None:
                upcoming.append(
                    {"name": job.name, "next_run": iso_utc(int(when.timestamp() * 1000))}
                )
        self._runtime.update(next_runs=sorted(upcoming, key=lambda item: item["next_run"]))

    def _run_tick(self, job: ScheduledJob) -> None:
        tick = tick_of(time.time(), job.every_seconds)
        try:
            with write_transaction(self._engine) as connection:
                claimed = ticks.claim(
                    connection, name=job.name, tick=tick, holder=self._holder, claimed_at=now_ms()
                )
            if not claimed:
                log.debug("%s tick %s already claimed by another replica", job.name, tick)
                return
            with job_lock(self._engine, job.lock_name):
                job.body()
        except JobAlreadyRunning:
            log.info("%s still running from an earlier tick; skipping %s", job.name, iso_utc(tick))
        except CandlecastError as exc:
            log.warning("%s failed: %s", job.name, exc)
        except Exception:
            log.exception("%s failed unexpectedly", job.name)
        finally:
            self._publish_next_runs()
