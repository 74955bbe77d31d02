"""Job runs: every backfill, ingest, reconcile, import and train, with structured details."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from candlecast.store.db import write_transaction
from candlecast.store.tables import job_runs

RUNNING = "running"
OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class JobRun:
    """One recorded run of a job."""

    id: int
    name: str
    symbol: str | None
    interval: str | None
    status: str
    started_at: int
    finished_at: int | None
    details: dict[str, Any]
    host: str | None


def start_run(
    engine: Engine, *, name: str, symbol: str | None, interval: str | None, started_at: int
) -> int:
    """Records a job as running, in its own committed transaction, and returns its id."""
    with write_transaction(engine) as connection:
        result = connection.execute(
            job_runs.insert().values(
                name=name,
                symbol=symbol,
                interval=interval,
                status=RUNNING,
                started_at=started_at,
                details={},
                host=socket.gethostname()[:128],
            )
        )
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])


def finish_run(
    engine: Engine, *, run_id: int, status: str, finished_at: int, details: dict[str, Any]
) -> None:
    """Records how a job run ended."""
    with write_transaction(engine) as connection:
        connection.execute(
            update(job_runs)
            .where(job_runs.c.id == run_id)
            .values(status=status, finished_at=finished_at, details=details)
        )


def recent_runs(
    connection: Connection, *, limit: int = 50, name: str | None = None
) -> list[JobRun]:
    """The newest job runs first."""
    query = select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
    if name is not None:
        query = query.where(job_runs.c.name == name)
    return [JobRun(**row._mapping) for row in connection.execute(query)]


def get_run(connection: Connection, *, run_id: int) -> JobRun | None:
    """One job run by id."""
    row = connection.execute(select(job_runs).where(job_runs.c.id == run_id)).first()
    return None if row is None else JobRun(**row._mapping)
