"""Exchange bans (HTTP 418): every process that talks to that exchange waits until they end."""

from __future__ import annotations

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from candlecast.store.tables import exchange_bans


def record(connection: Connection, *, base_url: str, until_ms: int, recorded_at: int) -> None:
    """Keeps the later of the stored ban and this one for the exchange at base_url."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(exchange_bans).values(
        base_url=base_url[:255], banned_until=until_ms, recorded_at=recorded_at
    )
    later = statement.excluded.banned_until > exchange_bans.c.banned_until
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["base_url"],
            set_={"banned_until": statement.excluded.banned_until, "recorded_at": recorded_at},
            where=later,
        )
    )


def banned_until(connection: Connection, *, base_url: str, now_ms: int) -> int | None:
    """The end of a ban still running at now_ms (epoch ms), or None."""
    until = connection.execute(
        select(exchange_bans.c.banned_until).where(exchange_bans.c.base_url == base_url[:255])
    ).scalar_one_or_none()
    return int(until) if until is not None and until > now_ms else None
