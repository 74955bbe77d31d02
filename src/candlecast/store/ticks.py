"""Scheduled ticks: the first replica to claim (job, tick) runs it; the others skip it."""

from __future__ import annotations

from sqlalchemy import Connection, delete
from sqlalchemy.dialects import postgresql, sqlite

from candlecast.store.tables import job_ticks


def claim(connection: Connection, *, name: str, tick: int, holder: str, claimed_at: int) -> bool:
    """Claims one tick of a job; True for exactly one caller across every replica."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(job_ticks)
        .values(name=name, tick=tick, claimed_by=holder[:128], claimed_at=claimed_at)
        .on_conflict_do_nothing(index_elements=["name", "tick"])
        .returning(job_ticks.c.tick)
    )
    return connection.execute(statement).first() is not None


def prune(connection: Connection, *, older_than: int) -> int:
    """Forgets claims of ticks before `older_than` (ms); they can never fire again."""
    result = connection.execute(delete(job_ticks).where(job_ticks.c.tick < older_than))
    return int(result.rowcount)
