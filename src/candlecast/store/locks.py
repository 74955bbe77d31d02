"""Job locks that hold across processes and replicas: a job already running is not started twice.

PostgreSQL: a session-level advisory lock on a connection held for the job's duration.
SQLite: an flock on a file in the state folder (see state_folder). Both vanish with a crashed
holder. In-memory SQLite, a database only its engine sees: locks in this process's memory, in
a LockTable that the engine itself carries (see configure), so they live and die with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from candlecast.domain import ConfigError, JobAlreadyRunning
from candlecast.store.db import normalize_url, sqlite_path

# The engine execution options that carry a configured state folder and, for an in-memory
# database, its lock table (see configure).
STATE_DIR_OPTION = "candlecast_state_dir"
LOCK_TABLE_OPTION = "candlecast_lock_table"
POSTGRES_STATE_FOLDER = "candlecast-state"


class LockTable:
    """Named job locks held in this process's memory, for a database only this process sees."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Holds the named lock for the block, or raises JobAlreadyRunning at once."""
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            raise JobAlreadyRunning(f"{name} is already running")
        try:
            yield
        finally:
            lock.release()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a lock name."""
    digest = hashlib.sha256(f"candlecast:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def state_folder(database_url: str, state_dir: Path | None = None) -> Path:
    """Where locks and generated tokens live: `state_dir` when set, else `<db file>.state/`
    beside a SQLite database, else `./candlecast-state/`. Not created here."""
    if state_dir is not None:
        return Path(state_dir).expanduser().resolve()
    database = sqlite_path(normalize_url(database_url))
    if database is not None:
        return _beside(database)
    return Path(POSTGRES_STATE_FOLDER).resolve()


def _beside(database: Path) -> Path:
    return database.with_name(database.name + ".state").resolve()


def ensure_state_folder(folder: Path) -> Path:
    """Creates the state folder (owner-only) if needed and returns it."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def configure(engine: Engine, state_dir: Path | None = None) -> None:
    """Prepares job_lock on this engine (Services does it for its engine): a configured state
    folder instead of the default, and for an in-memory SQLite database its lock table. Done
    once, where the engine is wired (not thread-safe); a table already there is kept."""
    if state_dir is not None:
        engine.update_execution_options(**{STATE_DIR_OPTION: str(state_dir)})
    if _in_memory(engine) and lock_table(engine) is None:
        engine.update_execution_options(**{LOCK_TABLE_OPTION: LockTable()})


def lock_table(engine: Engine) -> LockTable | None:
    """The in-process lock table the engine carries (in-memory SQLite, once configured)."""
    table = engine.get_execution_options().get(LOCK_TABLE_OPTION)
    return table if isinstance(table, LockTable) else None


def _in_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and sqlite_path(engine.url) is None


def lock_file_name(name: str) -> str:
    """A portable file name for a lock: `backfill:BTCUSDT:5m` becomes `backfill-BTCUSDT-5m.lock`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") + ".lock"


@contextmanager
def job_lock(engine: Engine, name: str) -> Iterator[None]:
    """Holds the named lock for the block, or raises JobAlreadyRunning at once."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name):
            yield
        return
    path = sqlite_path(engine.url)
    if path is None:
        table = lock_table(engine)
        if table is None:
            raise ConfigError(
                "job locks on an in-memory SQLite database need its engine configured first "
                "(candlecast.store.locks.configure; Services does it)"
            )
        with table.hold(name):
            yield
        return
    configured = engine.get_execution_options().get(STATE_DIR_OPTION)
    folder = Path(configured) if configured else _beside(path)
    with _file_lock(ensure_state_folder(folder) / lock_file_name(name), name):
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
