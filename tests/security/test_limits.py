"""Oversized windows, pages and bodies are refused (422 naming the parameter, 413 for a body)
before any work is done, on every POST route the app has."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from candlecast.api.middleware import MAX_BODY_BYTES
from tests.fuzz import states
from tests.integration.api_support import AUTH
from tests.security.support import fingerprint

LONG_AGO = "2025-01-01T00:00:00Z"
LATER = "2025-08-02T00:00:00Z"
# (path, query, the parameter the 422 must name)
OVERSIZED_GETS = (
    ("/api/series", {"start": LONG_AGO, "end": LATER}, "end"),
    ("/api/series", {"start": LONG_AGO}, "start"),
    ("/api/series", {"fallback_days": "91"}, "fallback_days"),
    ("/api/series", {"max_points": "100001"}, "max_points"),
    ("/api/series", {"start": "1000000000000", "end": "99999999999999999999"}, "end"),
    ("/api/candles", {"limit": "10001"}, "limit"),
    ("/api/candles", {"limit": "99999999999999999999999"}, "limit"),
    ("/api/futures", {"start": LONG_AGO, "end": LATER}, "end"),
    ("/api/ledger", {"days": "91"}, "days"),
    ("/api/jobs", {"limit": "201"}, "limit"),
    ("/api/models", {"limit": "201"}, "limit"),
)
OVERSIZED_POSTS: tuple[tuple[str, dict[str, str], dict[str, int] | None, str], ...] = (
    ("/api/init/backfill", {"days": "91"}, None, "days"),
    ("/api/init/backfill", {"days": "100000000"}, None, "days"),
    ("/api/init/backfill", {}, {"days": 91}, "days"),
    ("/api/init/backfill", {"limit": "1001"}, None, "limit"),
    ("/api/train", {"days": "91"}, None, "days"),
    ("/api/train", {}, {"days": 365}, "days"),
)


@pytest.fixture
def starting(engine: Engine, database_url: str) -> Iterator[tuple[TestClient, Engine]]:
    newest = states.prepare(engine, "starting")
    app = states.build_app(engine, database_url, now=states.exchange_start(newest))
    yield TestClient(app, raise_server_exceptions=False), engine


def test_oversized_windows_and_pages_are_refused_naming_the_parameter(
    starting: tuple[TestClient, Engine],
) -> None:
    client, engine = starting
    before = fingerprint(engine)
    wrong: list[tuple[object, ...]] = []
    for path, query, name in OVERSIZED_GETS:
        response = client.get(path, params=query)
        if response.status_code != 422 or f"'{name}'" not in response.json()["detail"]:
            wrong.append((path, query, response.status_code, response.text[:150]))
    for path, query, body, name in OVERSIZED_POSTS:
        response = client.post(path, params=query, json=body, headers=AUTH)
        if response.status_code != 422 or f"'{name}'" not in response.json()["detail"]:
            wrong.append((path, query, body, response.status_code, response.text[:150]))
    assert not wrong, wrong
    assert fingerprint(engine) == before


def test_oversized_bodies_are_refused_on_every_post_route(
    starting: tuple[TestClient, Engine],
) -> None:
    client, engine = starting
    before = fingerprint(engine)
    posts = [path for method, path in states.routes(client.app) if method == "POST"]  # type: ignore[arg-type]
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    with_body = {path for path in posts if "requestBody" in paths.get(path, {}).get("post", {})}
    assert posts and with_body
    big = b'{"days": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    for path in posts:
        headers = {**AUTH, "Content-Type": "application/json"}
        declared = client.post(path, content=big, headers=headers)
        assert declared.status_code == 413, (path, declared.status_code)
        if path in with_body:
            # Chunked, with no Content-Length to refuse up front: counted as it arrives. (A
            # route without a body never reads one, so nothing is buffered there.)
            chunks = iter([big[:40_000], big[40_000:]])
            streamed = client.post(path, content=chunks, headers=headers)
            assert streamed.status_code == 413, (path, streamed.status_code)
        # Without a token too: the size guard does not depend on auth.
        anonymous = client.post(path, content=big, headers={"Content-Type": "application/json"})
        assert anonymous.status_code == 413, path
    assert fingerprint(engine) == before


def test_oversized_query_values_are_refused_not_crashed(
    starting: tuple[TestClient, Engine],
) -> None:
    client, _engine = starting
    long_value = "A" * 50_000
    for path in ("/api/candles", "/api/series", "/api/health", "/api/jobs", "/api/forecast"):
        for name in ("symbol", "interval", "start", "name"):
            response = client.get(path, params={name: long_value})
            assert response.status_code < 500 or (
                path == "/api/health" and response.status_code == 503
            ), (path, name, response.status_code)
            if name in ("symbol", "interval"):
                assert response.status_code == 422, (path, name)


def test_out_of_range_ids_are_refused_not_crashed(starting: tuple[TestClient, Engine]) -> None:
    """Found by the fuzzer: a job id past 32 bits was a 500 on PostgreSQL (integer out of
    range); it is a 422 now, and the largest valid id is a plain 404."""
    client, _engine = starting
    for job_id in (2**31, 2**62, 2**63, 10**30):
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 422 and "'job_id'" in response.json()["detail"]
    assert client.get(f"/api/jobs/{2**31 - 1}").status_code == 404
