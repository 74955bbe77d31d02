"""The API's failure modes on SQLite and PostgreSQL: 422 naming the parameter, 401, 404, 409,
413, 503 and a bare 500; and health's 200/503."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from sqlalchemy import Engine

from candlecast.runtime import Runtime
from candlecast.store.locks import job_lock
from tests.integration.api_support import AUTH, STEP, client, load

# (method, path, query, the parameter the message must name)
BAD_PARAMETERS: list[tuple[str, str, dict[str, Any], str]] = [
    ("GET", "/api/series", {"start": "yesterday"}, "start"),
    ("GET", "/api/series", {"end": "2025-13-01T00:00:00Z"}, "end"),
    (
        "GET",
        "/api/series",
        {"start": "2025-08-02T00:00:00Z", "end": "2025-08-01T00:00:00Z"},
        "start",
    ),
    ("GET", "/api/series", {"start": "2025-01-01T00:00:00Z", "end": "2025-08-01T00:00:00Z"}, "end"),
    ("GET", "/api/series", {"fallback_days": 91}, "fallback_days"),
    ("GET", "/api/series", {"fallback_days": "seven"}, "fallback_days"),
    ("GET", "/api/series", {"format": "xml"}, "format"),
    ("GET", "/api/series", {"max_points": 1}, "max_points"),
    ("GET", "/api/series", {"symbol": "btc-usdt"}, "symbol"),
    ("GET", "/api/series", {"interval": "7m"}, "interval"),
    ("GET", "/api/candles", {"limit": 0}, "limit"),
    ("GET", "/api/candles", {"format": "parquet"}, "format"),
    ("GET", "/api/candles", {"start": "2025-08-02", "end": "2025-08-01"}, "start"),
    ("GET", "/api/futures", {"start": "nope"}, "start"),
    (
        "GET",
        "/api/futures",
        {"start": "2025-01-01T00:00:00Z", "end": "2025-08-01T00:00:00Z"},
        "end",
    ),
    ("GET", "/api/forecast", {"interval": "1M"}, "interval"),
    ("GET", "/api/models", {"limit": 1000}, "limit"),
    ("GET", "/api/jobs", {"limit": -1}, "limit"),
    ("GET", "/api/health", {"symbol": "x"}, "symbol"),
    ("GET", "/api/metrics", {"interval": "5M"}, "interval"),
    ("POST", "/api/train", {"days": 0}, "days"),
    ("POST", "/api/train", {"days": 91}, "days"),
    ("POST", "/api/init/backfill", {"days": 100}, "days"),
    ("POST", "/api/init/backfill", {"limit": 5000}, "limit"),
    ("POST", "/api/init/backfill", {"symbol": "??"}, "symbol"),
    ("POST", "/api/ingest", {"interval": "2x"}, "interval"),
    ("GET", "/api/ledger", {"days": 0}, "days"),
    ("GET", "/api/ledger", {"symbol": "b$"}, "symbol"),
]


def test_bad_parameters_give_422_naming_the_parameter(engine: Engine, database_url: str) -> None:
    load(engine, days=1)
    api = client(engine, database_url)
    for method, path, query, name in BAD_PARAMETERS:
        response = api.request(method, path, params=query, headers=AUTH)
        assert response.status_code == 422, (path, query, response.text)
        assert f"'{name}'" in response.json()["detail"], (path, query, response.text)


def test_no_model_and_no_data_give_404(engine: Engine, database_url: str) -> None:
    api = client(engine, database_url)
    assert api.get("/api/series").status_code == 404
    load(engine, days=1)
    for path in ("/api/forecast", "/api/metrics"):
        response = api.get(path)
        assert response.status_code == 404 and "model" in response.json()["detail"], path
    assert api.post("/api/futures/update", headers=AUTH).status_code == 404
    points = api.get("/api/series", params={"fallback_days": 1}).json()["points"]
    assert len(points) == 288 and points[-1]["pred"] is None


def test_a_running_training_gives_409(engine: Engine, database_url: str) -> None:
    load(engine, days=1)
    api = client(engine, database_url)
    with job_lock(engine, "train:BTCUSDT:5m"):
        response = api.post("/api/train", params={"days": 1}, headers=AUTH)
    assert response.status_code == 409 and "already running" in response.json()["detail"]


def test_training_runs_in_a_child_process_and_maps_its_errors(
    engine: Engine, database_url: str
) -> None:
    load(engine, days=1)
    # One day is too little history to train on: the child's NoData comes back as 404.
    response = client(engine, database_url).post("/api/train", params={"days": 1}, headers=AUTH)
    assert response.status_code == 404 and "cannot train" in response.json()["detail"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_exchange_gives_503(engine: Engine, database_url: str) -> None:
    api = client(
        engine,
        database_url,
        binance_url=f"http://127.0.0.1:{_closed_port()}",
        http_max_retries=0,
        http_timeout_seconds=2,
    )
    for path in ("/api/ingest", "/api/init/backfill"):
        response = api.post(path, headers=AUTH)
        assert response.status_code == 503, response.text
        assert "exchange" in response.json()["detail"]


def test_writes_are_off_without_a_token_and_errors_never_leak(
    engine: Engine, database_url: str
) -> None:
    closed = client(engine, database_url, api_token=None)
    assert closed.post("/api/futures/update", headers=AUTH).status_code == 503

    def broken(*_: Any, **__: Any) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    api = client(engine, database_url, trainer=broken)
    response = api.post("/api/train", params={"days": 2}, headers=AUTH)
    assert response.status_code == 500 and response.json() == {"detail": "internal error"}
    huge = api.post(
        "/api/train",
        headers={**AUTH, "Content-Type": "application/json"},
        content=b"{" + b" " * 70_000 + b"}",
    )
    assert huge.status_code == 413


def test_health_is_200_when_fresh_and_503_when_stale(engine: Engine, database_url: str) -> None:
    empty = client(engine, database_url).get("/api/health")
    assert empty.status_code == 503 and "no candles stored" in empty.json()["problems"]
    last = load(engine, days=1)
    runtime = Runtime(stream_enabled=True)
    fresh = client(engine, database_url, runtime=runtime, clock=lambda: last + STEP + 60_000)
    body = fresh.get("/api/health").json()
    assert fresh.get("/api/health").status_code == 200, body
    assert body["status"] == "healthy" and body["last_candle_age_seconds"] == pytest.approx(60)
    assert body["stream_connected"] is False and body["database"] is True
    runtime.update(exchange_error="https://x/api/v3/time failed 7 times")
    unreachable = fresh.get("/api/health")
    assert unreachable.status_code == 503
    assert unreachable.json()["problems"] == [
        "exchange unreachable: https://x/api/v3/time failed 7 times"
    ]
    runtime.update(exchange_error=None, scheduler_enabled=True, scheduler_running=False)
    runtime.bump()
    assert fresh.get("/api/health").status_code == 503
    stale = client(engine, database_url, clock=lambda: last + STEP + 3_600_000)
    assert stale.get("/api/health").status_code == 503
