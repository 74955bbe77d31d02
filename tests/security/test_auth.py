"""Every POST route refuses a request without the bearer token, or with a wrong one: 401, and
nothing in the database changes. The routes come from the app itself, so a new POST route is
covered the day it is added."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.fuzz import states
from tests.integration.api_support import TOKEN
from tests.security.support import fingerprint

WRONG_CREDENTIALS: dict[str, dict[str, str]] = {
    "no header": {},
    "empty bearer": {"Authorization": "Bearer "},
    "wrong token": {"Authorization": "Bearer wrong-token-0123456789abcdef"},
    "token with one more character": {"Authorization": f"Bearer {TOKEN}x"},
    "token's prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "other case": {"Authorization": f"Bearer {TOKEN.upper()}"},
    "basic scheme": {"Authorization": f"Basic {TOKEN}"},
    "token without scheme": {"Authorization": TOKEN},
    "token in a query-like header": {"X-Api-Token": TOKEN},
}


def test_every_post_route_needs_the_token(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    newest = states.prepare(engine, "starting")
    now = states.exchange_start(newest)
    fake = fake_exchange(start=now, speed=0)
    app = states.build_app(engine, database_url, now=now, exchange_url=fake.base_url)
    client = TestClient(app, raise_server_exceptions=False)
    posts = [path for method, path in states.routes(app) if method == "POST"]
    # The four write routes at least; any new one is enumerated the same way.
    assert {"/api/ingest", "/api/train", "/api/init/backfill", "/api/futures/update"} <= set(posts)
    before = fingerprint(engine)
    refused = []
    for path in posts:
        for label, headers in WRONG_CREDENTIALS.items():
            response = client.post(path, headers=headers, params={"days": 3}, json={"days": 3})
            refused.append((path, label, response.status_code))
            if response.status_code == 401:
                assert response.headers["WWW-Authenticate"] == "Bearer", (path, label)
    wrong = [entry for entry in refused if entry[2] != 401]
    assert not wrong, f"POSTs not refused with 401: {wrong}"
    assert fingerprint(engine) == before
    assert fake.stats.klines_calls == 0, "a refused POST reached the exchange"
    # The right token is accepted by the same routes (so the 401s above are about the token).
    accepted = client.post("/api/futures/update", headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code != 401


def test_no_route_accepts_other_write_methods(engine: Engine, database_url: str) -> None:
    app = states.build_app(engine, database_url, now=0)
    client = TestClient(app, raise_server_exceptions=False)
    before = fingerprint(engine)
    for method in ("PUT", "PATCH", "DELETE"):
        for path in {path for _method, path in states.routes(app) if "{" not in path}:
            assert client.request(method, path).status_code in (404, 405), (method, path)
    assert fingerprint(engine) == before


def test_write_routes_are_off_without_a_configured_token(engine: Engine, database_url: str) -> None:
    from candlecast.api import create_app
    from candlecast.bootstrap import Services
    from candlecast.config import Settings
    from candlecast.runtime import Runtime

    services = Services(settings=Settings(database_url=database_url), engine=engine)
    client = TestClient(create_app(services, Runtime()), raise_server_exceptions=False)
    for path in [p for m, p in states.routes(client.app) if m == "POST"]:  # type: ignore[arg-type]
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            assert client.post(path, headers=headers).status_code == 503, path
