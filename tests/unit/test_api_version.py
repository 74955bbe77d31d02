"""GET /api/version (now in api/, moved out of web/): the connection to the exchange, the
exchange's clock for the header, and the newest candle of the pair asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.clock import ExchangeClock
from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.runtime import Runtime
from candlecast.store import candles, db
from candlecast.store import pairs as store_pairs
from candlecast.web import mount

HOST_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z on the host
SKEW_MS = -3 * 3_600_000  # the exchange is three hours behind the host's clock
STEP = 300_000


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = db.create_store_engine(f"sqlite:///{tmp_path / 'candlecast.db'}")
    db.upgrade(built)
    yield built
    built.dispose()


def _client(engine: Engine, runtime: Runtime) -> TestClient:
    settings = Settings(database_url=str(engine.url), api_token="t" * 24)
    services = Services(settings=settings, engine=engine)
    return TestClient(create_app(services, runtime), raise_server_exceptions=False)


def _runtime() -> Runtime:
    clock = ExchangeClock(host_clock=lambda: HOST_MS)
    clock.observe(HOST_MS + SKEW_MS, HOST_MS - 10, HOST_MS + 10)
    return Runtime(scheduler_enabled=True, scheduler_running=True, clock=clock)


def _store(engine: Engine, symbol: str, first: int, count: int) -> None:
    rows = [
        (t, "1", "2", "0.5", "1.5", "10", t + STEP - 1, None, None, None, None)
        for t in range(first, first + count * STEP, STEP)
    ]
    with db.write_transaction(engine) as connection:
        candles.upsert_candles(
            connection, symbol=symbol, interval="5m", rows=rows, source="file", fetched_at=0
        )


def _follow(engine: Engine, *names: str) -> None:
    with db.write_transaction(engine) as connection:
        for name in names:
            store_pairs.add(connection, Pair.parse(name), added_at=0)


def test_version_carries_the_connection_and_the_exchange_clock(engine: Engine) -> None:
    runtime = _runtime()
    runtime.update(stream_enabled=True, stream_connected=True, exchange_reached=True)
    body = _client(engine, runtime).get("/api/version").json()
    assert body["exchange_now_ms"] == HOST_MS + SKEW_MS
    assert body["connection"] == {
        "state": "live",
        "reason": None,
        "hint": None,
        "next_retry_at": None,
    }


def test_offline_says_what_to_check_and_when_it_retries(engine: Engine) -> None:
    runtime = _runtime()
    runtime.update(
        stream_enabled=True,
        exchange_error="ExchangeUnavailable: connection refused",
        exchange_hint="Check this host's network connection and CANDLECAST_BINANCE_URL.",
        next_retry_ms=HOST_MS + 30_000,
    )
    connection = _client(engine, runtime).get("/api/version").json()["connection"]
    assert connection["state"] == "offline"
    assert "connection refused" in connection["reason"]
    assert "CANDLECAST_BINANCE_URL" in connection["hint"]
    assert connection["next_retry_at"] == "2025-12-01T00:00:30Z"


def test_etag_changes_with_the_connection_but_not_with_the_clock(engine: Engine) -> None:
    ticking = {"now": HOST_MS}
    clock = ExchangeClock(host_clock=lambda: ticking["now"])
    runtime = Runtime(scheduler_enabled=True, stream_enabled=True, clock=clock)
    runtime.update(stream_connected=True, exchange_reached=True)
    client = _client(engine, runtime)
    first = client.get("/api/version")
    tag = first.headers["etag"]
    ticking["now"] += 5_000  # the clock moves on; nothing else changes
    assert client.get("/api/version", headers={"If-None-Match": tag}).status_code == 304
    runtime.update(stream_connected=False)  # the stream drops: REST fallback
    second = client.get("/api/version", headers={"If-None-Match": tag})
    assert second.status_code == 200 and second.headers["etag"] != tag
    assert second.json()["connection"]["state"] == "degraded"
    assert second.json()["exchange_now_ms"] == HOST_MS + 5_000


def test_version_reads_the_newest_candle_of_the_pair_asked_for(engine: Engine) -> None:
    _follow(engine, "BTCUSDT:5m", "ETHUSDT:5m")
    _store(engine, "BTCUSDT", HOST_MS - 10 * STEP, 10)
    _store(engine, "ETHUSDT", HOST_MS - 20 * STEP, 4)
    client = _client(engine, _runtime())
    default = client.get("/api/version")
    eth = client.get("/api/version", params={"symbol": "ETHUSDT", "interval": "5m"})
    assert default.json()["last_candle_time"] == "2025-11-30T23:55:00Z"
    assert eth.json()["last_candle_time"] == "2025-11-30T22:35:00Z"
    # Each pair's tag is its own: a page of one pair is not woken by another's candles.
    assert default.headers["etag"] != eth.headers["etag"]
    bad = client.get("/api/version", params={"symbol": "b$", "interval": "5m"})
    assert bad.status_code == 422 and "symbol" in bad.text


def test_the_dashboard_routes_belong_to_the_api_not_to_the_pages(engine: Engine) -> None:
    pages = FastAPI()
    settings = Settings(database_url=str(engine.url))
    mount(pages, services=Services(settings=settings, engine=engine))
    paths = {getattr(route, "path", "") for route in pages.routes}
    assert not [path for path in paths if path.startswith("/api")], paths
    client = _client(engine, _runtime())
    assert client.get("/api/version").status_code == 200
    ledger = client.get("/api/ledger", params={"days": 1})
    assert ledger.status_code == 200
    assert ledger.json()["forecasts"] == 0 and ledger.json()["points"] is None
    schema = client.get("/api/openapi.json").json()["paths"]
    assert "/api/version" in schema and "/api/ledger" in schema
