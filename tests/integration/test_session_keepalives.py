"""Every candlecast session on PostgreSQL asks the server to probe a silent client, so that a
worker host that vanishes without closing its sockets does not keep its sessions (and an open
transaction's locks) for the kernel's default two hours.

Seen in CI: a far worker's session outlived its link and held locks for 10 minutes."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Engine, text

from candlecast.queue.connection import client_connector, worker_connector
from candlecast.store import db

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
EXPECTED = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "3",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "30000",
    "TimeZone": "UTC",
}


_QUERY = (
    "SELECT name, current_setting(name) FROM unnest(ARRAY["
    "'tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count', "
    "'tcp_user_timeout', 'TimeZone', 'search_path']) AS name"
)


@ON_POSTGRES
def test_store_sessions_have_server_side_keepalives_and_keep_their_schema(
    engine: Engine, database_url: str
) -> None:
    with engine.connect() as connection:
        rows = connection.execute(text(_QUERY)).all()
        settings: dict[str, str] = {str(name): str(value) for name, value in rows}
    assert {k: settings[k] for k in EXPECTED} == EXPECTED
    # The URL's own options (the test schema's search_path) are kept beside ours.
    options = str(db.normalize_url(database_url).query["options"])
    assert settings["search_path"] == options.split("=")[-1]


@ON_POSTGRES
def test_queue_sessions_have_server_side_keepalives(database_url: str) -> None:
    # The connectors the API/CLI (sync) and the workers (asyncio) defer and run jobs through.
    client = client_connector(database_url, application_name="candlecast-test")
    client.open()
    try:
        settings = {
            name: client.execute_query_one(f"SELECT current_setting('{name}') AS value")["value"]
            for name in EXPECTED
        }
    finally:
        client.close()
    assert settings == EXPECTED

    async def worker_settings() -> dict[str, str]:
        worker = worker_connector(database_url, application_name="candlecast-test", max_size=2)
        await worker.open_async()
        try:
            return {
                name: (
                    await worker.execute_query_one_async(
                        f"SELECT current_setting('{name}') AS value"
                    )
                )["value"]
                for name in EXPECTED
            }
        finally:
            await worker.close_async()

    assert asyncio.run(worker_settings()) == EXPECTED
