"""Job locks that hold across processes and replicas: a job already running is not started twice.

PostgreSQL: a session-level advisory lock on a connection held for the job's duration.
SQLite: an flock on a file beside the database. Both vanish with a crashed holder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from candlecast.domain import JobAlreadyRunning
from candlecast.store.db import sqlite_path

_memory_locks: dict[str, threading.Lock] = {}
_memory_guard = threading.Lock()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    digest = hashlib.sha256(f"candlecast:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def job_lock(engine: Engine, name: str) -> Iterator[None]:
    """Holds the named lock for the block, or raises JobAlreadyRunning at once."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name):
            yield
        return
    path = sqlite_path(engine.url)
    if path is None:
        with _memory_lock(name):
            yield
        return
    with _file_lock(path.with_name(f"{path.name}.{name}.lock"), name):
        yield


@contextmanager
def _advisory_lock(engine: Engine, name: str) -> Iterator[None]:
    with engine.connect() as connection:
        # Advisory locks span the whole database: scope them to this schema's deployment.
        database, schema = connection.execute(
            text("SELECT current_database(), current_schema()")
        ).one()
        key = lock_key(f"{database}.{schema}:{name}")
        acquired = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
        ).scalar_one()
        connection.commit()
        if not acquired:
            raise JobAlreadyRunning(f"{name} is already running (in this or another replica)")
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextmanager
def _file_lock(path: os.PathLike[str], name: str) -> Iterator[None]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobAlreadyRunning(
                f"{name} is already running (another process holds it)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


@contextmanager
def _memory_lock(name: str) -> Iterator[None]:
    with _memory_guard:
        lock = _memory_locks.setdefault(name, threading.Lock())
    if not lock.acquire(blocking=False):
        raise JobAlreadyRunning(f"{name} is already running")
    try:
        yield
    finally:
        lock.release()
