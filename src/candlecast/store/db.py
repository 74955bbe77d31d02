"""Engines and migrations: SQLite in WAL mode, or PostgreSQL through psycopg 3."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from candlecast.domain import ConfigError, StoreError

if TYPE_CHECKING:
    import psycopg
    from alembic.config import Config

# An arbitrary, fixed key: migrations from several replicas at once are serialised on it.
_MIGRATION_LOCK_KEY = 0x63616E646C65  # "candle"


# A client that vanishes without closing its socket (its host lost, a link cut) must not keep
# its sessions, and any open transaction's locks, for the kernels' default two hours. Both ends
# probe a silent link after 10 s idle and give up after 3 unanswered probes 3 s apart (~19 s),
# or after 30 s of unacknowledged data. The client's side is libpq's; the server's is set by
# SET on each new session (not in `options`, which poolers such as PgBouncer refuse or drop).
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}
TCP_USER_TIMEOUT_MS = 30_000
SERVER_KEEPALIVES: dict[str, int] = {
    "tcp_keepalives_idle": KEEPALIVES["keepalives_idle"],
    "tcp_keepalives_interval": KEEPALIVES["keepalives_interval"],
    "tcp_keepalives_count": KEEPALIVES["keepalives_count"],
    "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
}
SET_SERVER_KEEPALIVES: Final = "; ".join(
    f"SET {name} = {value}" for name, value in SERVER_KEEPALIVES.items()
)


def postgres_connect_args(url: URL) -> dict[str, Any]:
    """libpq parameters of every candlecast session on PostgreSQL: the URL's own `options` (a
    search_path), UTC, and the client's side of the keepalives above."""
    # Pinned to UTC so that no timestamptz arithmetic can ever shift with the server.
    options = " ".join(filter(None, [str(url.query.get("options", "")), "-c timezone=UTC"]))
    return {
        "options": options,
        "connect_timeout": 10,
        **KEEPALIVES,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
    }


def set_server_keepalives(connection: psycopg.Connection[Any]) -> None:
    """The server's side of the keepalives, on a new session (a pool's `configure` hook)."""
    connection.execute(SET_SERVER_KEEPALIVES)
    if not connection.autocommit:
        connection.commit()


async def set_server_keepalives_async(connection: psycopg.AsyncConnection[Any]) -> None:
    """set_server_keepalives for an asyncio pool."""
    await connection.execute(SET_SERVER_KEEPALIVES)
    if not connection.autocommit:
        await connection.commit()


def _on_postgres_connect(dbapi_connection: Any, _record: Any) -> None:
    set_server_keepalives(dbapi_connection)


def normalize_url(database_url: str) -> URL:
    """Parses a database URL and routes plain PostgreSQL URLs to psycopg 3."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise ConfigError(f"CANDLECAST_DATABASE_URL is not a database URL: {exc}") from None
    if url.drivername in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(
            f"unsupported database {url.get_backend_name()!r}; use sqlite:/// or postgresql://"
        )
    return url


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for in-memory and non-SQLite URLs."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(str(url.database))


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINTs; take it over.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _on_sqlite_begin(connection: Any) -> None:
    # Writers ask for IMMEDIATE: a deferred transaction that upgrades to a write fails at
    # once with SQLITE_BUSY when another process wrote meanwhile, whatever busy_timeout says.
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_store_engine(database_url: str, *, pool: bool = True) -> Engine:
    """Builds an engine for the URL with the session settings candlecast relies on."""
    url = normalize_url(database_url)
    kwargs: dict[str, Any] = {"future": True}
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None and not path.parent.exists():
            raise ConfigError(f"the folder for the SQLite database does not exist: {path.parent}")
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if not pool:
            kwargs["poolclass"] = NullPool
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    kwargs["connect_args"] = postgres_connect_args(url)
    url = url.difference_update_query(["options"])
    kwargs["pool_pre_ping"] = True
    if not pool:
        kwargs["poolclass"] = NullPool
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _on_postgres_connect)
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: IMMEDIATE on SQLite, so writers queue instead of failing."""
    with engine.connect() as connection:
        with connection.execution_options(sqlite_begin="IMMEDIATE").begin():
            yield connection


def _alembic_config() -> Config:
    # Alembic is imported only when a migration has to run: it costs a CLI ~0.15 s to load.
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "candlecast.store:migrations")
    return config


_VERSIONS = Path(__file__).parent / "migrations" / "versions"
_REVISION_LINE = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*[\"']([^\"']+)[\"']", re.M)


def head_revision() -> str:
    """The newest migration the code knows, read from the migration files' headers."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        for name, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    # Merges (tuple down_revisions) or an unusual layout: let alembic work it out.
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise StoreError("no migrations found")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return _stored_revision(connection)


def _stored_revision(connection: Connection) -> str | None:
    if connection.dialect.name == "postgresql":
        exists = connection.execute(text("SELECT to_regclass('alembic_version')")).scalar()
    else:
        exists = connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'")
        ).scalar()
    if exists is None:
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> str:
    """Migrates the database to the newest schema; safe to call from several replicas.

    An up-to-date database costs one query: alembic is loaded only when there is work to do.
    """
    head = head_revision()
    try:
        if current_revision(engine) == head:
            return head
        from alembic import command

        config = _alembic_config()
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StoreError(f"cannot reach the database to migrate it: {exc.orig}") from None
    return head
