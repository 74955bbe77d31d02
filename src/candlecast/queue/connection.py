"""procrastinate's connections: the same database, schema and session settings as the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from candlecast.store.db import (
    normalize_url,
    postgres_connect_args,
    set_server_keepalives,
    set_server_keepalives_async,
)

if TYPE_CHECKING:
    import procrastinate


def conninfo(database_url: str) -> str:
    """A libpq connection string for the URL (password included; it never reaches a log)."""
    url = normalize_url(database_url)
    return (
        url.set(drivername="postgresql")
        .difference_update_query(["options"])
        .render_as_string(hide_password=False)
    )


def connection_kwargs(database_url: str, *, application_name: str) -> dict[str, Any]:
    """Session settings as the store's engine has them (the schema through `options`, UTC), and
    TCP keepalives, so that a peer lost without a word is noticed in seconds, not hours."""
    return {
        **postgres_connect_args(normalize_url(database_url)),
        "application_name": application_name[:63],
    }


def worker_connector(
    database_url: str, *, application_name: str, max_size: int
) -> procrastinate.PsycopgConnector:
    """The asyncio connector of a queue worker process."""
    from procrastinate import PsycopgConnector

    return PsycopgConnector(
        conninfo=conninfo(database_url),
        kwargs=connection_kwargs(database_url, application_name=application_name),
        configure=set_server_keepalives_async,
        min_size=1,
        max_size=max_size,
    )


def client_connector(
    database_url: str, *, application_name: str
) -> procrastinate.SyncPsycopgConnector:
    """The synchronous connector that defers jobs (the API, the CLI)."""
    from procrastinate import SyncPsycopgConnector

    return SyncPsycopgConnector(
        conninfo=conninfo(database_url),
        kwargs=connection_kwargs(database_url, application_name=application_name),
        configure=set_server_keepalives,
        min_size=1,
        max_size=4,
    )
