"""The task queue as seen from outside: figures, jobs, workers and the periodic schedule.

procrastinate owns its tables (migration 0007) and this module only reads them, except for
re-queueing a failed job through procrastinate's own SQL function. Beside them, two tables of
ours (migration 0008) say which host runs each worker and what error a failed job raised.
The queue exists only on PostgreSQL: on SQLite every read is empty and `enabled` is False.

Times are epoch ms UTC; procrastinate's timestamptz columns are converted in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, delete, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from candlecast.store.tables import queue_job_errors, queue_worker_hosts

# A worker whose heartbeat is older than this is not counted as live.
LIVE_HEARTBEAT_MS = 30_000
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted")
# The events that put a job (back) in line: its waiting starts at the newest of them.
_QUEUED_EVENTS = "'deferred', 'deferred_for_retry', 'retried'"
MAX_ERROR_CHARS = 4000

RetryOutcome = Literal["retried", "not_found", "not_failed", "lock_taken", "disabled"]


def _ms(expression: str) -> str:
    return f"(extract(epoch from {expression}) * 1000)::bigint"


@dataclass(frozen=True)
class JobCount:
    """How many jobs of one task are in one status in one queue."""

    queue: str
    task: str
    status: str
    count: int


@dataclass(frozen=True)
class QueueDepth:
    """One queue's waiting jobs (due now), and how long the oldest of them has waited."""

    queue: str
    waiting: int
    oldest_waiting_seconds: float | None


@dataclass(frozen=True)
class LiveWorker:
    """A worker with a recent heartbeat, and where it runs (None until it registers)."""

    worker_id: int
    last_heartbeat: int
    host: str | None
    pid: int | None
    name: str | None
    queues: str | None
    concurrency: int | None
    started_at: int | None


@dataclass(frozen=True)
class QueueFigures:
    """The queue at a glance; `enabled` is False where there is no queue (SQLite)."""

    enabled: bool
    jobs: list[JobCount] = field(default_factory=list)
    queues: list[QueueDepth] = field(default_factory=list)
    # Jobs put back in line: automatically after a failure, or by hand (`candlecast jobs
    # --retry`). Counted from procrastinate's events, which go with their job when it is deleted.
    retries: int = 0
    workers: list[LiveWorker] = field(default_factory=list)


@dataclass(frozen=True)
class QueueJob:
    """One job with its pair, its latest start and end, its worker's host and its error."""

    id: int
    queue: str
    task: str
    symbol: str | None
    interval: str | None
    status: str
    attempts: int
    scheduled_at: int | None
    started: int | None
    finished: int | None
    worker_id: int | None
    host: str | None
    pid: int | None
    # The latest recorded failure; a retried job keeps it until it fails again.
    error: str | None

    @property
    def pair(self) -> str | None:
        """SYMBOL:INTERVAL from the job's arguments, when it names a pair."""
        if self.symbol is None or self.interval is None:
            return None
        return f"{self.symbol}:{self.interval}"


@dataclass(frozen=True)
class PeriodicDefer:
    """The newest defer of one periodic task, and the job it made (None once deleted)."""

    task_name: str
    periodic_id: str
    # Epoch seconds, as procrastinate stores it: the cron tick the job was deferred for.
    defer_timestamp: int
    job_id: int | None
    job_status: str | None


def queue_enabled(connection: Connection) -> bool:
    """Whether this database holds procrastinate's tables: PostgreSQL, migrated past 0007."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar()
    return found is not None


def register_worker_host(
    connection: Connection,
    *,
    worker_id: int,
    host: str,
    pid: int,
    name: str,
    queues: str,
    concurrency: int,
    started_at: int,
) -> None:
    """Records (or updates) where a procrastinate worker runs, and prunes stale rows."""
    values = {
        "worker_id": worker_id,
        "host": host[:255],
        "pid": pid,
        "name": name[:255],
        "queues": queues[:255],
        "concurrency": concurrency,
        "started_at": started_at,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(queue_worker_hosts).values(**values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["worker_id"],
            set_={key: value for key, value in values.items() if key != "worker_id"},
        )
    )
    prune_queue_rows(connection)


def prune_queue_rows(connection: Connection) -> int:
    """Deletes host rows of workers procrastinate no longer has, and errors of deleted jobs;
    returns how many rows went."""
    if not queue_enabled(connection):
        return 0
    hosts = connection.execute(
        delete(queue_worker_hosts).where(
            text(
                "NOT EXISTS (SELECT 1 FROM procrastinate_workers w "
                "WHERE w.id = queue_worker_hosts.worker_id)"
            )
        )
    )
    errors = connection.execute(
        delete(queue_job_errors).where(
            text(
                "NOT EXISTS (SELECT 1 FROM procrastinate_jobs j "
                "WHERE j.id = queue_job_errors.job_id)"
            )
        )
    )
    return int(hosts.rowcount or 0) + int(errors.rowcount or 0)


def record_job_error(connection: Connection, job_id: int, error: str, at: int) -> None:
    """Keeps the error of a job's latest failure (the task wrapper calls it as a job fails)."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(queue_job_errors).values(
        job_id=job_id, error=error[:MAX_ERROR_CHARS], at=at
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["job_id"],
            set_={"error": statement.excluded.error, "at": statement.excluded.at},
        )
    )


def queue_figures(connection: Connection, now_ms: int) -> QueueFigures:
    """Job counts, each queue's waiting depth and oldest wait, retries and live workers, as
    of now_ms (the caller's wall clock, epoch ms)."""
    if not queue_enabled(connection):
        return QueueFigures(enabled=False)
    counts = connection.execute(
        text(
            "SELECT queue_name, task_name, status::text, count(*) FROM procrastinate_jobs "
            "GROUP BY queue_name, task_name, status ORDER BY 1, 2, 3"
        )
    ).all()
    jobs = [JobCount(str(q), str(t), str(s), int(n)) for q, t, s, n in counts]
    # A job waits from the newest event that queued it, or from its schedule when that is later.
    waiting = connection.execute(
        text(
            "SELECT j.queue_name, count(*), min(greatest("
            f"{_ms('j.scheduled_at')}, (SELECT {_ms('max(e.at)')} FROM procrastinate_events e "
            f"WHERE e.job_id = j.id AND e.type IN ({_QUEUED_EVENTS})))) "
            "FROM procrastinate_jobs j WHERE j.status = 'todo' "
            f"AND (j.scheduled_at IS NULL OR {_ms('j.scheduled_at')} <= :now) "
            "GROUP BY j.queue_name"
        ),
        {"now": now_ms},
    ).all()
    due = {str(q): (int(n), None if oldest is None else int(oldest)) for q, n, oldest in waiting}
    queues = []
    for name in sorted({count.queue for count in jobs} | set(due)):
        n, oldest = due.get(name, (0, None))
        age = None if oldest is None else max(0.0, (now_ms - oldest) / 1000)
        queues.append(QueueDepth(name, n, age))
    retries = connection.execute(
        text(
            "SELECT count(*) FROM procrastinate_events "
            "WHERE type IN ('deferred_for_retry', 'retried')"
        )
    ).scalar_one()
    return QueueFigures(True, jobs, queues, int(retries), live_workers(connection, now_ms))


def live_workers(connection: Connection, now_ms: int) -> list[LiveWorker]:
    """Workers whose heartbeat is at most LIVE_HEARTBEAT_MS old at now_ms, oldest first."""
    if not queue_enabled(connection):
        return []
    rows = connection.execute(
        text(
            f"SELECT w.id, {_ms('w.last_heartbeat')}, h.host, h.pid, h.name, h.queues, "
            "h.concurrency, h.started_at FROM procrastinate_workers w "
            "LEFT JOIN queue_worker_hosts h ON h.worker_id = w.id "
            f"WHERE {_ms('w.last_heartbeat')} >= :since ORDER BY w.id"
        ),
        {"since": now_ms - LIVE_HEARTBEAT_MS},
    ).all()
    return [
        LiveWorker(
            worker_id=int(row[0]),
            last_heartbeat=int(row[1]),
            host=row[2],
            pid=_int(row[3]),
            name=row[4],
            queues=row[5],
            concurrency=_int(row[6]),
            started_at=_int(row[7]),
        )
        for row in rows
    ]


_JOB_COLUMNS = (
    "SELECT j.id, j.queue_name, j.task_name, j.args->>'symbol', j.args->>'interval', "
    f"j.status::text, j.attempts, {_ms('j.scheduled_at')}, "
    f"(SELECT {_ms('max(e.at)')} FROM procrastinate_events e "
    "WHERE e.job_id = j.id AND e.type = 'started'), "
    f"CASE WHEN j.status IN ('todo', 'doing') THEN NULL ELSE (SELECT {_ms('max(e.at)')} "
    "FROM procrastinate_events e WHERE e.job_id = j.id "
    "AND e.type IN ('succeeded', 'failed', 'cancelled', 'aborted')) END, "
    "j.worker_id, h.host, h.pid, x.error "
    "FROM procrastinate_jobs j "
    "LEFT JOIN queue_worker_hosts h ON h.worker_id = j.worker_id "
    "LEFT JOIN queue_job_errors x ON x.job_id = j.id "
)


def list_jobs(
    connection: Connection, *, status: str | None = None, limit: int = 50
) -> list[QueueJob]:
    """The newest jobs first, of one status (todo, doing, failed...) or of all."""
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"unknown job status {status!r}; one of {', '.join(JOB_STATUSES)}")
    if not queue_enabled(connection):
        return []
    where = "WHERE j.status = CAST(:status AS procrastinate_job_status) " if status else ""
    params: dict[str, Any] = {"limit": max(0, limit)}
    if status:
        params["status"] = status
    rows = connection.execute(
        text(_JOB_COLUMNS + where + "ORDER BY j.id DESC LIMIT :limit"), params
    ).all()
    return [_job(row) for row in rows]


def get_job(connection: Connection, *, job_id: int) -> QueueJob | None:
    """One job by its id, or None."""
    if not queue_enabled(connection):
        return None
    row = connection.execute(text(_JOB_COLUMNS + "WHERE j.id = :id"), {"id": job_id}).first()
    return None if row is None else _job(row)


def _job(row: Any) -> QueueJob:
    return QueueJob(
        id=int(row[0]),
        queue=str(row[1]),
        task=str(row[2]),
        symbol=row[3],
        interval=row[4],
        status=str(row[5]),
        attempts=int(row[6]),
        scheduled_at=_int(row[7]),
        started=_int(row[8]),
        finished=_int(row[9]),
        worker_id=_int(row[10]),
        host=row[11],
        pid=_int(row[12]),
        error=row[13],
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def retry_failed_job(connection: Connection, *, job_id: int) -> RetryOutcome:
    """Puts a failed job back in line, due now, through procrastinate's own retry function;
    says why not otherwise (lock_taken: the same work already waits under its queueing lock)."""
    if not queue_enabled(connection):
        return "disabled"
    status = connection.execute(
        text("SELECT status::text FROM procrastinate_jobs WHERE id = :id FOR UPDATE"),
        {"id": job_id},
    ).scalar_one_or_none()
    if status is None:
        return "not_found"
    if status != "failed":
        return "not_failed"
    try:
        with connection.begin_nested():
            connection.execute(
                text("SELECT procrastinate_retry_job_v2(:id, now(), NULL, NULL, NULL)"),
                {"id": job_id},
            )
    except IntegrityError:
        return "lock_taken"
    return "retried"


def periodic_schedule(connection: Connection) -> list[PeriodicDefer]:
    """The newest defer of each periodic task, with the status of the job it made."""
    if not queue_enabled(connection):
        return []
    rows = connection.execute(
        text(
            "SELECT DISTINCT ON (d.task_name, d.periodic_id) d.task_name, d.periodic_id, "
            "d.defer_timestamp, d.job_id, j.status::text FROM procrastinate_periodic_defers d "
            "LEFT JOIN procrastinate_jobs j ON j.id = d.job_id "
            "ORDER BY d.task_name, d.periodic_id, d.defer_timestamp DESC NULLS LAST"
        )
    ).all()
    return [
        PeriodicDefer(str(task), str(periodic), int(stamp or 0), _int(job), status)
        for task, periodic, stamp, job, status in rows
    ]


def pending_operations(connection: Connection) -> dict[str, set[tuple[str, str, str]]]:
    """candlecast's jobs by status (`todo`, `doing`) as (task, symbol, interval): what the
    dispatcher must not queue again. Empty where there is no queue."""
    pending: dict[str, set[tuple[str, str, str]]] = {"todo": set(), "doing": set()}
    if not queue_enabled(connection):
        return pending
    rows = connection.execute(
        text(
            "SELECT status::text, task_name, args->>'symbol', args->>'interval' "
            "FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
            "AND task_name LIKE 'candlecast.%' AND args ? 'symbol'"
        )
    ).all()
    for status, task, symbol, interval in rows:
        pending[str(status)].add((str(task), str(symbol), str(interval)))
    return pending
