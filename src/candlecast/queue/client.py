"""Deferring tasks from any thread of any process: the API, the stream, the CLI and the tasks
themselves. Each deferral names the pair; an operation already waiting for the pair is not
queued again, and a lock keeps one pair's conflicting jobs from running at once.

Why not procrastinate's queueing locks for "one waiting per pair": a failed or stalled job
cannot be retried while a newer job holds its queueing lock (procrastinate's retry then fails on
the unique index and the job stays `doing`, holding the pair's lock for good). So the waiting
jobs are read instead; a rare duplicate from a race only runs the operation twice, which every
operation tolerates (each holds its own job lock, and its writes are idempotent)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from candlecast.config import Settings
from candlecast.domain import ConfigError, Pair
from candlecast.store.db import normalize_url
from candlecast.store.leases import default_holder

log = logging.getLogger(__name__)

SYNC_QUEUE = "sync"
TRAIN_QUEUE = "train"
QUEUES = (SYNC_QUEUE, TRAIN_QUEUE)


@dataclass(frozen=True)
class TaskSpec:
    """Where an operation's jobs wait, and what they must not run beside."""

    queue: str
    # Jobs sharing a lock run one after the other: one pair's candle writers never overlap.
    lock_group: str | None


TASKS: dict[str, TaskSpec] = {
    "backfill": TaskSpec(SYNC_QUEUE, "sync"),
    "ingest": TaskSpec(SYNC_QUEUE, "sync"),
    "reconcile": TaskSpec(SYNC_QUEUE, "sync"),
    "forecast": TaskSpec(SYNC_QUEUE, None),
    "train": TaskSpec(TRAIN_QUEUE, "train"),
    "evaluate": TaskSpec(TRAIN_QUEUE, "evaluate"),
}


def task_name(operation: str) -> str:
    """The queue's name of an operation: `candlecast.train`."""
    return f"candlecast.{operation}"


def uses_queue(settings: Settings) -> bool:
    """Whether this deployment runs its work on the task queue (PostgreSQL) rather than in one
    process (SQLite)."""
    return normalize_url(settings.database_url).get_backend_name() == "postgresql"


def parse_queues(value: str | None) -> list[str] | None:
    """`sync,train` as given to `--queues`; None (or empty) means every queue."""
    if value is None or not value.strip():
        return None
    chosen = [part.strip() for part in value.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in QUEUES]
    if unknown:
        raise ConfigError(
            f"--queues: unknown queue(s) {', '.join(unknown)}; choose from {', '.join(QUEUES)}"
        )
    return list(dict.fromkeys(chosen))


def holder_name() -> str:
    """This process as workers and leases name it: `host:pid`."""
    return default_holder()


class QueueClient:
    """A synchronous procrastinate app for deferring, opened on first use (thread-safe)."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self._app: Any = None
        self._guard = threading.Lock()
        self._engine = engine
        self._own_engine = False

    def pending(self) -> dict[str, set[tuple[str, str, str]]]:
        """Queued (`todo`) and running (`doing`) operations as (task, symbol, interval)."""
        from candlecast.store import queue as queue_store

        with self._engine_opened().connect() as connection:
            return queue_store.pending_operations(connection)

    def _engine_opened(self) -> Engine:
        with self._guard:
            if self._engine is None:
                from candlecast.store.db import create_store_engine

                self._engine = create_store_engine(self.settings.database_url)
                self._own_engine = True
            return self._engine

    def _opened(self) -> Any:
        with self._guard:
            if self._app is None:
                import procrastinate

                from candlecast.queue.connection import client_connector

                connector = client_connector(
                    self.settings.database_url, application_name=f"candlecast:{holder_name()}"
                )
                self._app = procrastinate.App(connector=connector).open()
            return self._app

    def defer(
        self,
        operation: str,
        pair: Pair,
        *,
        at_ms: int | None = None,
        check_waiting: bool = True,
        **arguments: Any,
    ) -> int | None:
        """Queues one operation on a pair (at `at_ms`, else now); returns the job's id, or None
        when the same operation already waits for this pair (unless the caller checked that
        itself: `check_waiting=False`)."""
        spec = TASKS[operation]
        if check_waiting:
            waiting = self.pending()["todo"]
            if (task_name(operation), pair.symbol, pair.interval) in waiting:
                log.debug("%s for %s already waits in the queue", operation, pair)
                return None
        options: dict[str, Any] = {"queue": spec.queue}
        if spec.lock_group is not None:
            options["lock"] = f"{spec.lock_group}:{pair}"
        if at_ms is not None:
            options["schedule_at"] = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        deferrer = self._opened().configure_task(task_name(operation), **options)
        job_id: int = deferrer.defer(symbol=pair.symbol, interval=pair.interval, **arguments)
        return job_id

    def close(self) -> None:
        """Closes the connections (a later defer opens them again)."""
        with self._guard:
            if self._app is not None:
                self._app.close()
                self._app = None
            if self._own_engine and self._engine is not None:
                self._engine.dispose()
                self._engine = None
                self._own_engine = False
