"""GET /api/version: the connection to the exchange and the exchange's clock for the header."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from candlecast.bootstrap import Services
from candlecast.clock import ExchangeClock
from candlecast.config import Settings
from candlecast.runtime import Runtime
from candlecast.web import mount

HOST_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z on the host
SKEW_MS = -3 * 3_600_000  # the exchange is three hours behind the host's clock


def _client(tmp_path: Path, runtime: Runtime) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    services = Services(settings=settings, engine=create_engine("sqlite://"))
    app = FastAPI()
    mount(app, services=services, runtime=runtime, docs_dir=tmp_path)
    return TestClient(app)


def _runtime() -> Runtime:
    clock = ExchangeClock(host_clock=lambda: HOST_MS)
    clock.observe(HOST_MS + SKEW_MS, HOST_MS - 10, HOST_MS + 10)
    return Runtime(scheduler_enabled=True, scheduler_running=True, clock=clock)


def test_version_carries_the_connection_and_the_exchange_clock(tmp_path: Path) -> None:
    runtime = _runtime()
    runtime.update(stream_enabled=True, stream_connected=True, exchange_reached=True)
    body = _client(tmp_path, runtime).get("/api/version").json()
    assert body["exchange_now_ms"] == HOST_MS + SKEW_MS
    assert body["connection"] == {
        "state": "live",
        "reason": None,
        "hint": None,
        "next_retry_at": None,
    }


def test_offline_says_what_to_check_and_when_it_retries(tmp_path: Path) -> None:
    runtime = _runtime()
    runtime.update(
        stream_enabled=True,
        exchange_error="ExchangeUnavailable: connection refused",
        exchange_hint="Check this host's network connection and CANDLECAST_BINANCE_URL.",
        next_retry_ms=HOST_MS + 30_000,
    )
    connection = _client(tmp_path, runtime).get("/api/version").json()["connection"]
    assert connection["state"] == "offline"
    assert "connection refused" in connection["reason"]
    assert "CANDLECAST_BINANCE_URL" in connection["hint"]
    assert connection["next_retry_at"] == "2025-12-01T00:00:30Z"


def test_etag_changes_with_the_connection_but_not_with_the_clock(tmp_path: Path) -> None:
    ticking = {"now": HOST_MS}
    clock = ExchangeClock(host_clock=lambda: ticking["now"])
    runtime = Runtime(scheduler_enabled=True, stream_enabled=True, clock=clock)
    runtime.update(stream_connected=True, exchange_reached=True)
    client = _client(tmp_path, runtime)
    first = client.get("/api/version")
    tag = first.headers["etag"]
    ticking["now"] += 5_000  # the clock moves on; nothing else changes
    assert client.get("/api/version", headers={"If-None-Match": tag}).status_code == 304
    runtime.update(stream_connected=False)  # the stream drops: REST fallback
    second = client.get("/api/version", headers={"If-None-Match": tag})
    assert second.status_code == 200 and second.headers["etag"] != tag
    assert second.json()["connection"]["state"] == "degraded"
    assert second.json()["exchange_now_ms"] == HOST_MS + 5_000
