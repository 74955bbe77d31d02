"""The shapes of /api/queue."""

from __future__ import annotations

from pydantic import BaseModel


class QueueJobCountOut(BaseModel):
    """How many jobs of one task are in one status in one queue."""

    queue: str
    task: str
    status: str
    count: int


class QueueDepthOut(BaseModel):
    """One queue's jobs due now that no worker has taken, and the oldest one's wait."""

    queue: str
    waiting: int
    oldest_waiting_seconds: float | None


class QueueWorkerOut(BaseModel):
    """A worker with a heartbeat in the last 30 s; host and pid once it has registered them."""

    worker_id: int
    host: str | None
    pid: int | None
    name: str | None
    queues: list[str] | None
    concurrency: int | None
    started_at: str | None
    last_heartbeat: str


class QueueJobOut(BaseModel):
    """One task-queue job."""

    id: int
    queue: str
    task: str
    pair: str | None
    status: str
    attempts: int
    scheduled_at: str | None
    started_at: str | None
    finished_at: str | None
    worker_id: int | None
    host: str | None
    pid: int | None
    error: str | None


class PeriodicOut(BaseModel):
    """The newest defer of one periodic task and the job it made."""

    task: str
    periodic_id: str
    deferred_for: str
    job_id: int | None
    job_status: str | None


class QueueResponse(BaseModel):
    """GET /api/queue. `enabled` is false where there is no task queue (SQLite): every list
    is then empty."""

    enabled: bool
    jobs: list[QueueJobCountOut]
    queues: list[QueueDepthOut]
    retries: int
    workers: list[QueueWorkerOut]
    waiting: list[QueueJobOut]
    running: list[QueueJobOut]
    failed: list[QueueJobOut]
    recent: list[QueueJobOut]
    periodic: list[PeriodicOut]
