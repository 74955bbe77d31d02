"""Job runs: every backfill, ingest, reconcile, import and train, with structured details."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

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


def _holder() -> str:
    """This process as "hostname:pid", so a run left open by a dead process can be found."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}"


def close_abandoned(engine: Engine, *, finished_at: int) -> int:
    """Marks failed the runs left `running` by processes of this host that no longer exist
    (killed with SIGKILL, or the machine lost power); returns how many."""
    hostname = socket.gethostname()[:100]
    with write_transaction(engine) as connection:
        running = connection.execute(
            select(job_runs.c.id, job_runs.c.host, job_runs.c.details).where(
                job_runs.c.status == RUNNING, job_runs.c.host.like(f"{hostname}:%")
            )
        ).all()
        closed = 0
        for run_id, host, details in running:
            pid = str(host).rsplit(":", 1)[-1]
            if pid.isdigit() and _alive(int(pid)):
                continue
            connection.execute(
                update(job_runs)
                .where(job_runs.c.id == run_id, job_runs.c.status == RUNNING)
                .values(
                    status=FAILED,
                    finished_at=finished_at,
                    details={
                        **(details or {}),
                        "error": "abandoned: its process ended without finishing it",
                        "error_type": "Abandoned",
                    },
                )
            )
            closed += 1
    return closed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
                host=_holder(),
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
    connection: Connection,
    *,
    limit: int = 50,
    name: str | None = None,
    pair: tuple[str, str] | None = None,
) -> list[JobRun]:
    """The newest job runs first; with `pair` (symbol, interval), that pair's and pair-less
    ones only."""
    query = select(job_runs).order_by(job_runs.c.id.desc()).limit(limit)
    if name is not None:
        query = query.where(job_runs.c.name == name)
    if pair is not None:
        symbol, interval = pair
        query = query.where(
            or_(
                and_(job_runs.c.symbol == symbol, job_runs.c.interval == interval),
                job_runs.c.symbol.is_(None),
            )
        )
    return [JobRun(**row._mapping) for row in connection.execute(query)]


def get_run(connection: Connection, *, run_id: int) -> JobRun | None:
    """One job run by id."""
    row = connection.execute(select(job_runs).where(job_runs.c.id == run_id)).first()
    return None if row is None else JobRun(**row._mapping)
