"""Helpers for the security tests: a fingerprint of every table, and raw ASGI requests.

Raw requests matter for path traversal: HTTP clients (httpx included) remove `..` segments
before sending, while a real server hands the application whatever bytes arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Engine, MetaData, select


def fingerprint(engine: Engine) -> dict[str, tuple[int, str]]:
    """Every table of the database (reflected, so new ones count too): rows and a checksum."""
    metadata = MetaData()
    metadata.reflect(engine)
    found: dict[str, tuple[int, str]] = {}
    with engine.connect() as connection:
        for name, table in sorted(metadata.tables.items()):
            # Sorted here, not in SQL: PostgreSQL cannot order by a json column.
            rows = sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()
            found[name] = (len(rows), digest)
    return found


def raw_get(app: Any, raw_path: bytes, query: bytes = b"") -> tuple[int, bytes]:
    """GET exactly these path bytes, as an ASGI server does: `path` is the percent-decoded
    raw path, without any normalization of `..` or `//`."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("latin-1"), encoding="latin-1"),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return status, bytes(body)
