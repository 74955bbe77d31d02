"""SQL injection strings in every query, path and body parameter of every operation change
nothing in the database (row counts and a checksum of every table) and never give a 5xx.

The parameters come from the app's OpenAPI schema, so a new parameter is covered when added.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.fuzz import states
from tests.integration.api_support import AUTH
from tests.security.support import fingerprint

PAYLOADS = (
    "' OR '1'='1",
    "' OR 1=1 --",
    "1; DROP TABLE candles; --",
    "BTCUSDT'; DELETE FROM candles; --",
    "5m' UNION SELECT * FROM job_runs --",
    '") OR 1=1 --',
    "1 OR 1=1",
    "'; UPDATE forecasts SET pred_close = 0; --",
    "1' AND SLEEP(5) --",
    "'||pg_sleep(5)--",
    "train\x00' OR 1=1",
    "%27%20OR%201%3D1",
)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(method, path, location, name) of every parameter and JSON body field."""
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                found.append((method.upper(), path, parameter["in"], parameter["name"]))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                reference = _body_schema(schema, body["schema"])
                for name in reference.get("properties", {}):
                    found.append((method.upper(), path, "body", name))
    return found


def _body_schema(schema: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("anyOf", [body])
    for option in options:
        reference = option.get("$ref", "")
        if reference:
            return dict(schema["components"]["schemas"][reference.rsplit("/", 1)[1]])
    return body


@pytest.fixture
def running(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> tuple[TestClient, Engine]:
    newest = states.prepare(engine, "running")
    now = states.exchange_start(newest)
    fake = fake_exchange(start=now, speed=0)
    app = states.build_app(engine, database_url, now=now, exchange_url=fake.base_url)
    return TestClient(app, raise_server_exceptions=False), engine


def test_injection_strings_change_nothing_and_never_give_a_5xx(
    running: tuple[TestClient, Engine],
) -> None:
    client, engine = running
    targets = _operations(client.app.openapi())  # type: ignore[attr-defined]
    locations = {location for *_rest, location, _name in targets}
    assert {"query", "path", "body"} <= locations, "the schema lost a parameter location"
    before = fingerprint(engine)
    server_errors = []
    for method, path, location, name in targets:
        for payload in PAYLOADS:
            url, params, body = path, {}, None
            if location == "path":
                url = path.replace("{" + name + "}", quote(payload, safe=""))
            elif location == "query":
                params = {name: payload}
            elif location == "body":
                body = {name: payload}
            headers = AUTH if method == "POST" else {}
            response = client.request(method, url, params=params, json=body, headers=headers)
            if response.status_code >= 500 and not (
                path == "/api/health" and response.status_code == 503
            ):
                server_errors.append(
                    f"{method} {path} {location} {name}={payload!r}: "
                    f"{response.status_code} {response.text[:120]}"
                )
    assert not server_errors, "\n".join(server_errors)
    assert fingerprint(engine) == before
    # `name` is the one free-text parameter: an injection string (a NUL byte too, which
    # PostgreSQL refuses with an error of its own) is a 422 naming it, never a match.
    assert client.get("/api/jobs", params={"name": "train"}).json()["runs"]
    for payload in PAYLOADS:
        response = client.get("/api/jobs", params={"name": payload[:32]})
        assert response.status_code == 422, payload
        assert "'name'" in response.json()["detail"]
