"""GET /api/queue: the task queue (PostgreSQL) at a glance, for the Jobs page and for humans."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from candlecast.api.context import Context
from candlecast.api.schemas_queue import QueueJobOut, QueueResponse
from candlecast.api.shaping import iso
from candlecast.domain import NotFound
from candlecast.store import queue

router = APIRouter(prefix="/api", tags=["ops"])


def _job(job: queue.QueueJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue": job.queue,
        "task": job.task,
        "pair": job.pair,
        "status": job.status,
        "attempts": job.attempts,
        "scheduled_at": iso(job.scheduled_at),
        "started_at": iso(job.started),
        "finished_at": iso(job.finished),
        "worker_id": job.worker_id,
        "host": job.host,
        "pid": job.pid,
        "error": job.error,
    }


def _worker(worker: queue.LiveWorker) -> dict[str, Any]:
    queues = None if worker.queues is None else [q for q in worker.queues.split(",") if q]
    return {
        "worker_id": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "name": worker.name,
        # [] means every queue.
        "queues": queues,
        "concurrency": worker.concurrency,
        "started_at": iso(worker.started_at),
        "last_heartbeat": iso(worker.last_heartbeat),
    }


@router.get("/queue", response_model=QueueResponse)
def queue_state(
    context: Context,
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per list, newest first")] = 50,
) -> QueueResponse:
    """The task queue: job counts, waiting depth and oldest wait per queue, retries, live
    workers with their host, waiting / running / failed / recent jobs (failed ones with their
    error) and the periodic tasks' newest defers. `enabled: false` on SQLite (no queue)."""
    # procrastinate stamps jobs and heartbeats with the database's clock, which is the wall
    # clock, not the exchange's.
    now = time.time_ns() // 1_000_000
    with context.services.engine.connect() as connection:
        figures = queue.queue_figures(connection, now)
        lists = {
            name: [_job(job) for job in queue.list_jobs(connection, status=status, limit=limit)]
            for name, status in (
                ("waiting", "todo"),
                ("running", "doing"),
                ("failed", "failed"),
                ("recent", None),
            )
        }
        periodic = queue.periodic_schedule(connection)
    return QueueResponse.model_validate(
        {
            "enabled": figures.enabled,
            "jobs": [vars(count) for count in figures.jobs],
            "queues": [vars(depth) for depth in figures.queues],
            "retries": figures.retries,
            "workers": [_worker(worker) for worker in figures.workers],
            **lists,
            "periodic": [
                {
                    "task": entry.task_name,
                    "periodic_id": entry.periodic_id,
                    "deferred_for": iso(entry.defer_timestamp * 1000),
                    "job_id": entry.job_id,
                    "job_status": entry.job_status,
                }
                for entry in periodic
            ],
        }
    )


@router.get("/queue/jobs/{job_id}", response_model=QueueJobOut)
def queue_job(context: Context, job_id: int) -> QueueJobOut:
    """One queue job (the `Location` of a 202 from `POST /api/train?wait=false` on
    PostgreSQL): its task, pair, status, attempts, worker and error. 404 when there is no such
    job (finished jobs are kept CANDLECAST_QUEUE_KEEP_HOURS)."""
    with context.services.engine.connect() as connection:
        job = queue.get_job(connection, job_id=job_id)
    if job is None:
        raise NotFound(f"no queue job {job_id}")
    return QueueJobOut.model_validate(_job(job))
