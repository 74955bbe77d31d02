"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, and the fake exchange.

PostgreSQL tests use, in this order: CANDLECAST_TEST_POSTGRES_URL when set; a server accepting
connections on 127.0.0.1:5432 (user postgres, database test or postgres); a throwaway server
started for the session when PostgreSQL's binaries are installed. Otherwise they skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from candlecast.store import db
from tests.fake_exchange.fixtures import fake_exchange

__all__ = ["fake_exchange"]

POSTGRES_ENV = "CANDLECAST_TEST_POSTGRES_URL"
_LOCAL = "postgresql+psycopg://postgres@127.0.0.1:5432/{}"
_HOW_TO_ENABLE = (
    f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1/test), a "
    "server on 127.0.0.1:5432 (user postgres, database test or postgres), or PostgreSQL's "
    "binaries (/usr/lib/postgresql/*/bin/initdb) to start a throwaway one"
)


class _Throwaway:
    """A PostgreSQL cluster in a temporary folder, run as the postgres user when we are root
    (initdb refuses root), with trust auth on a free loopback port."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="candlecast-test-pg-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        data = str(self.folder / "data")
        self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        except (subprocess.SubprocessError, OSError):
            pass  # never started, or already gone
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


_resolved: list[str | None] = []
_throwaways: list[_Throwaway] = []


def _accepts(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _start_throwaway() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or (os.geteuid() == 0 and shutil.which("runuser") is None):
        return None
    server = _Throwaway(Path(found[-1]).parent)
    _throwaways.append(server)
    try:
        server.start()
    except (subprocess.SubprocessError, OSError, LookupError):
        return None
    return server.url


def _resolve() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return url
    for database in ("test", "postgres"):
        if _accepts(_LOCAL.format(database)):
            return _LOCAL.format(database)
    return _start_throwaway()


def _postgres_url() -> str:
    """The PostgreSQL URL for this session, resolved once; skips saying how to enable it."""
    if not _resolved:
        _resolved.append(_resolve())
    if _resolved[0] is None:
        pytest.skip(_HOW_TO_ENABLE)
    return _resolved[0]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL URL every PostgreSQL test of the session uses."""
    return _postgres_url()


@pytest.fixture(scope="session", autouse=True)
def _stop_throwaway_postgres() -> Iterator[None]:
    """Removes the throwaway PostgreSQL, if this session started one, when the session ends."""
    yield
    while _throwaways:
        _throwaways.pop().stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh schema on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'candlecast.db'}"
        return
    base = db.normalize_url(request.getfixturevalue("postgres_url"))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # pre_ping: a test may restart the server meanwhile (tests/integration/test_scale_out.py).
    admin = create_engine(base, pool_pre_ping=True)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = base.update_query_dict({"options": f"-c search_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


# Sessions holding a lock on anything in the schema, other than the caller's.
_LOCK_HOLDERS = """
SELECT DISTINCT a.pid, a.application_name, a.state, left(a.query, 120)
FROM pg_locks AS l
JOIN pg_class AS c ON c.oid = l.relation
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE n.nspname = :schema AND l.pid <> pg_backend_pid()
"""


def _drop_schema(admin: Engine, schema: str) -> None:
    """Drops a test's schema. A session the test left behind (a process that outlived it, a
    relay whose far end vanished) can hold locks there for as long as TCP keeps it: such
    sessions are ended and named in a warning, instead of hanging the run (CI once waited
    10 minutes here)."""
    for _ in range(5):
        try:
            with admin.begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '10s'"))
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            return
        except OperationalError:
            with admin.begin() as connection:
                holders = connection.execute(text(_LOCK_HOLDERS), {"schema": schema}).all()
                for pid, *_ in holders:
                    connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            warnings.warn(
                f"schema {schema}: ended sessions left holding locks: {holders}", stacklevel=1
            )
    raise RuntimeError(f"could not drop the test schema {schema}")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated engine on each backend."""
    built = db.create_store_engine(database_url)
    db.upgrade(built)
    yield built
    built.dispose()
