"""Stream shard leases: PostgreSQL advisory locks held on one dedicated session per process.

A process that streams opens one LeaseSession: a psycopg connection of its own (never from
SQLAlchemy's pool, whose connections come and go), named `candlecast-stream:<host>:<pid>` in
pg_stat_activity. On it the process holds

- one exclusive advisory lock per shard it owns (lease_key), and
- a shared "member" lock that every live lease session of the deployment holds, so the live
  streaming processes of this database+schema can be counted without seeing other schemas'.

Every lock lives and dies with the session: a process killed with -9 loses its leases as soon
as the kernel closes its socket; a host that vanishes loses them when the server's keepalives
give up on it (set on the session below: about 9 s idle, or 10 s of unacknowledged data).
The client side is symmetric, so a process cut off from the database notices within about
the same time and must stop streaming what it held: when the session dies, every lease on it
is gone at once.

Keys are scoped per database and schema like the job locks (see locks.lock_key), so several
deployments (or test schemas) on one database never see each other's leases.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy import Engine, text

from candlecast.domain import ConfigError, StoreError
from candlecast.store.db import normalize_url
from candlecast.store.locks import lock_key

APPLICATION_PREFIX = "candlecast-stream:"
CONNECT_TIMEOUT_SECONDS = 5
# Every statement on the lease session is instant (try-lock, unlock, a pg_locks read): a
# longer one means a stuck server, which must count as a lost session, not hang the thread.
STATEMENT_TIMEOUT_MS = 5000
# Both ends give up on a silent peer after ~9 s idle (5 + 2 x 2) or 10 s of unacknowledged
# data, so a shard comes free, and its old owner stops, well within the 15 s failover target.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}
TCP_USER_TIMEOUT_MS = 10000
_SERVER_SETTINGS = (
    "-c timezone=UTC",
    f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    f"-c tcp_keepalives_idle={KEEPALIVES['keepalives_idle']}",
    f"-c tcp_keepalives_interval={KEEPALIVES['keepalives_interval']}",
    f"-c tcp_keepalives_count={KEEPALIVES['keepalives_count']}",
    f"-c tcp_user_timeout={TCP_USER_TIMEOUT_MS}",
)

_SCOPE = "SELECT current_database(), current_schema()"
# No bind parameters and no `::` casts: the same text runs through psycopg and SQLAlchemy.
_ADVISORY = """
SELECT l.classid, l.objid, l.mode, l.pid, a.application_name
FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def lease_key(database: str, schema: str, shard: int) -> int:
    """The signed 64-bit advisory key of a stream shard in this database and schema."""
    return lock_key(f"{database}.{schema}:stream-shard:{shard}")


def members_key(database: str, schema: str) -> int:
    """The key every live lease session of this database and schema holds in shared mode."""
    return lock_key(f"{database}.{schema}:stream-members")


def advisory_ids(key: int) -> tuple[int, int]:
    """How pg_locks shows a bigint advisory key: (classid, objid), its high and low 32 bits
    as unsigned numbers (with objsubid 1)."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def default_holder() -> str:
    """This process as lease holders name it: `<host>:<pid>`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def application_name(holder: str | None = None) -> str:
    """The application_name of a lease session: `candlecast-stream:<host>:<pid>` by default."""
    return APPLICATION_PREFIX + (holder or default_holder())


def lease_conninfo(database_url: str, application: str) -> str:
    """A libpq conninfo for a lease session, from the same URL the store's engines use (its
    query parameters kept, `options` such as a search_path included)."""
    url = normalize_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError("stream shard leases need PostgreSQL")
    params: dict[str, Any] = {}
    for name, value in url.query.items():
        params[name] = value[-1] if isinstance(value, tuple) else value
    options = " ".join(filter(None, [str(params.pop("options", "")), *_SERVER_SETTINGS]))
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    for name, part in {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }.items():
        if part is not None:
            params[name] = part
    params.update(KEEPALIVES)
    params["tcp_user_timeout"] = TCP_USER_TIMEOUT_MS
    params["options"] = options
    params["application_name"] = application
    return make_conninfo("", **params)


@dataclass(frozen=True, slots=True)
class LeaseView:
    """Who holds what, as one read of pg_locks saw it."""

    members: frozenset[int]  # backend pids of the live lease sessions of this schema
    holders: Mapping[int, int] = field(default_factory=dict)  # shard -> backend pid

    def counts(self) -> dict[int, int]:
        """Shards held per live member (members holding none included, with 0)."""
        counts = dict.fromkeys(self.members, 0)
        for pid in self.holders.values():
            counts[pid] = counts.get(pid, 0) + 1
        return counts


class LeaseSession:
    """One dedicated connection holding this process's shard leases.

    One session holds any number of shard locks; if it dies, all of them are lost together
    (the server drops a dead session's locks). Not thread-safe: one thread drives it.
    Any database error closes the session and raises StoreError, so a caller never goes on
    believing it holds a lease the server may already have given away.
    """

    def __init__(self, database_url: str, *, application: str | None = None) -> None:
        conninfo = lease_conninfo(database_url, application or application_name())
        try:
            self._connection = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the stream lease session: {exc}") from None
        self._held: set[int] = set()
        database, schema, pid = self._one(
            "SELECT current_database(), current_schema(), pg_backend_pid()"
        )
        self._database, self._schema, self.pid = str(database), str(schema), int(pid)
        self._one(
            "SELECT pg_try_advisory_lock_shared(%s)", members_key(self._database, self._schema)
        )

    @property
    def held(self) -> frozenset[int]:
        """The shards this session holds."""
        return frozenset(self._held)

    @property
    def closed(self) -> bool:
        return self._connection.closed

    def key(self, shard: int) -> int:
        return lease_key(self._database, self._schema, shard)

    def try_acquire(self, shard: int) -> bool:
        """Takes the shard's lease if nobody holds it; True when this session holds it."""
        if shard in self._held:
            # Advisory locks nest within a session: taking one twice would need two unlocks.
            return True
        if not self._one("SELECT pg_try_advisory_lock(%s)", self.key(shard))[0]:
            return False
        self._held.add(shard)
        return True

    def release(self, shard: int) -> None:
        """Gives the shard's lease back (nothing when this session does not hold it)."""
        if shard not in self._held:
            return
        self._held.discard(shard)
        self._one("SELECT pg_advisory_unlock(%s)", self.key(shard))

    def alive(self) -> bool:
        """Whether the session still answers; False (and the session closed) when not."""
        if self._connection.closed:
            return False
        try:
            self._one("SELECT 1")
        except StoreError:
            return False
        return True

    def view(self, shards: int) -> LeaseView:
        """Who holds shards 0..shards-1 now, and which lease sessions of this schema are live."""
        try:
            rows = self._connection.execute(_ADVISORY).fetchall()
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"the stream lease session failed: {exc}") from None
        members = {
            pid for _, _, pid, _ in _matching(rows, [members_key(self._database, self._schema)])
        }
        members.add(self.pid)
        shard_of_key = {self.key(shard): shard for shard in range(shards)}
        holders = {shard_of_key[key]: pid for key, _, pid, _ in _matching(rows, shard_of_key)}
        return LeaseView(frozenset(members), holders)

    def close(self) -> None:
        """Ends the session; the server releases every lease it held."""
        self._held.clear()
        with contextlib.suppress(psycopg.Error):
            self._connection.close()

    def _one(self, query: str, *params: object) -> tuple[Any, ...]:
        try:
            row = self._connection.execute(query, params or None).fetchone()
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"the stream lease session failed: {exc}") from None
        if row is None:
            raise StoreError(f"no answer to {query!r}")
        return tuple(row)


def _matching(
    rows: Iterable[Any], keys: Iterable[int]
) -> Iterable[tuple[int, str, int, str | None]]:
    """(key, mode, pid, application_name) of the advisory lock rows on any of the keys."""
    wanted = {advisory_ids(key): key for key in keys}
    for classid, objid, mode, pid, application in rows:
        key = wanted.get((int(classid), int(objid)))
        if key is not None:
            yield key, str(mode), int(pid), application


def lease_owners(engine: Engine, shards: Iterable[int]) -> dict[int, str | None]:
    """Who holds each shard now: the holder's application_name (`candlecast-stream:<host>:<pid>`),
    `pid <backend pid>` if it has none, or None for a shard nobody holds."""
    with engine.connect() as connection:
        database, schema = connection.execute(text(_SCOPE)).one()
        rows = connection.execute(text(_ADVISORY)).all()
    shard_of_key = {lease_key(database, schema, shard): shard for shard in shards}
    owners: dict[int, str | None] = dict.fromkeys(shard_of_key.values())
    for key, _, pid, application in _matching(rows, shard_of_key):
        owners[shard_of_key[key]] = application or f"pid {pid}"
    return owners
