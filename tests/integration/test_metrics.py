"""/metrics: figures from the store, the exchange, the stream and HTTP, under a path prefix too,
and no secret in it. Offline Swagger UI under the prefix."""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.clock import ExchangeClock
from candlecast.config import Settings
from candlecast.domain import ExchangeUnavailable, IPBanned
from candlecast.exchange.stream import KlineClosed, KlineStream
from candlecast.runtime import Runtime
from candlecast.store import candle_reads, db, ledger, runs
from candlecast.store.db import write_transaction
from tests.integration.api_support import AUTH, DAY, FIRST, STEP, TOKEN, client, load

pytestmark = pytest.mark.shared_data

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
PAIR = {"symbol": "BTCUSDT", "interval": "5m"}


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape_text(app: Any) -> str:
    """GET /metrics through ASGI, waiting for fresh database figures."""
    # Read the database on every scrape, and wait for it rather than take the last snapshot.
    app.state.metrics.store.ttl = 0.0
    app.state.metrics.store.max_wait = 30.0
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def scrape(app: Any) -> Samples:
    return parse(asyncio.run(scrape_text(app)))


def _forecast(target: int, asof_close: Decimal, pred_close: Decimal) -> ledger.Forecast:
    return ledger.Forecast(
        model_id=1,
        symbol="BTCUSDT",
        interval="5m",
        made_at=target - STEP,
        made_at_exchange=None,
        asof_open_time=target - STEP,
        target_open_time=target,
        asof_close=asof_close,
        pred_open=asof_close,
        pred_high=pred_close,
        pred_low=pred_close,
        pred_close=pred_close,
        pred_range=Decimal("10"),
        close_lo=pred_close - 50,
        close_hi=pred_close + 50,
        interval_level=Decimal("0.9"),
        prob_up=Decimal("0.5"),
        baselines={},
    )


def _record_run(engine: Engine, name: str, status: str, ms: int, **details: Any) -> None:
    run_id = runs.start_run(engine, name=name, symbol="BTCUSDT", interval="5m", started_at=1_000)
    runs.finish_run(engine, run_id=run_id, status=status, finished_at=1_000 + ms, details=details)


def test_store_figures_candles_jobs_and_ledger(engine: Engine, database_url: str) -> None:
    load(engine, days=1)
    gap = FIRST + DAY
    newest = load(engine, days=1, first=gap + 10 * STEP)
    # Forecasts for three candles of the gap, recorded before those candles exist, and one for
    # the candle after the newest, which stays unscored.
    with engine.connect() as connection:
        before = candle_reads.read_candles(
            connection, symbol="BTCUSDT", interval="5m", start=gap - STEP, end=gap - STEP
        )
    asof_close = before[0].close
    predictions = [asof_close + 7, asof_close - 3, asof_close + 20]
    with write_transaction(engine) as connection:
        for k, pred in enumerate(predictions):
            assert ledger.record(
                connection,
                forecast=_forecast(gap + k * STEP, asof_close, pred),
                close_time=gap + (k + 1) * STEP - 1,
            )
        assert ledger.record(
            connection,
            forecast=_forecast(newest + STEP, asof_close, asof_close),
            close_time=newest + 2 * STEP - 1,
        )
    load(engine, days=8 * STEP / DAY, first=gap)  # 2 candles of the gap stay missing
    with write_transaction(engine) as connection:
        assert ledger.score(connection, symbol="BTCUSDT", interval="5m", scored_at=1) == 3
        real = candle_reads.read_candles(
            connection, symbol="BTCUSDT", interval="5m", start=gap, end=gap + 2 * STEP
        )
    _record_run(engine, "ingest", "ok", 2_500, repaired=3)
    _record_run(engine, "reconcile", "ok", 120_000, repaired=2, checked=576)
    _record_run(engine, "train", "failed", 400, error="boom")
    running = runs.start_run(
        engine, name="train", symbol="BTCUSDT", interval="5m", started_at=5_000
    )
    # The exchange's clock is 42 s past the newest candle's close, whatever the host says.
    clock = ExchangeClock(host_clock=lambda: newest + STEP + 42_000)
    api = client(engine, database_url, runtime=Runtime(clock=clock))

    samples = scrape(api.app)

    assert value(samples, "candlecast_candles_stored", **PAIR) == 288 * 2 + 8
    assert value(samples, "candlecast_candles_missing", **PAIR) == 2
    assert value(samples, "candlecast_candle_age_seconds", **PAIR) == pytest.approx(42.0)
    assert value(samples, "candlecast_candles_repaired_total", **PAIR) == 5
    assert value(samples, "candlecast_job_runs_total", job="ingest", status="ok") == 1
    assert value(samples, "candlecast_job_runs_total", job="train", status="failed") == 1
    ingest = {"job": "ingest", "status": "ok"}
    histogram = "candlecast_job_run_duration_seconds"
    assert value(samples, f"{histogram}_bucket", le="1.0", **ingest) == 0
    assert value(samples, f"{histogram}_bucket", le="5.0", **ingest) == 1
    assert value(samples, f"{histogram}_bucket", le="+Inf", **ingest) == 1
    assert value(samples, f"{histogram}_sum", **ingest) == pytest.approx(2.5)
    assert value(samples, "candlecast_job_runs_running", job="train") == 1
    assert value(samples, "candlecast_forecasts_recorded_total", **PAIR) == 4
    assert value(samples, "candlecast_forecasts_scored_total", **PAIR) == 3
    model_mae = sum(abs(float(p - c.close)) for p, c in zip(predictions, real, strict=True)) / 3
    persistence_mae = sum(abs(float(asof_close - c.close)) for c in real) / 3
    mae = "candlecast_prospective_close_mae"
    assert value(samples, mae, forecaster="model", **PAIR) == pytest.approx(model_mae)
    assert value(samples, mae, forecaster="persistence", **PAIR) == pytest.approx(persistence_mae)
    assert value(samples, "candlecast_prospective_window_forecasts", **PAIR) == 3

    # Runs already counted are not counted again; the one that was running now is.
    runs.finish_run(engine, run_id=running, status="ok", finished_at=35_000, details={})
    _record_run(engine, "ingest", "ok", 1_000, repaired=1)
    again = scrape(api.app)
    assert value(again, "candlecast_job_runs_total", job="ingest", status="ok") == 2
    assert value(again, "candlecast_job_runs_total", job="train", status="ok") == 1
    assert value(again, "candlecast_job_runs_total", job="train", status="failed") == 1
    assert value(again, f"{histogram}_sum", **ingest) == pytest.approx(3.5)
    assert value(again, "candlecast_candles_repaired_total", **PAIR) == 6
    assert ("candlecast_job_runs_running", frozenset({("job", "train")})) not in again


def _sqlite_services(tmp_path: Path, **settings: Any) -> Services:
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    engine = db.create_store_engine(url)
    db.upgrade(engine)
    return Services(settings=Settings(database_url=url, **settings), engine=engine)


def test_exchange_requests_by_endpoint_and_status_with_429_and_418(
    fake_exchange: Any, tmp_path: Path
) -> None:
    fake = fake_exchange(start="2025-09-27T00:02:30Z", speed=0)
    services = _sqlite_services(
        tmp_path, binance_url=fake.base_url, weight_budget_per_minute=1200, http_max_retries=1
    )
    app = create_app(services, Runtime())
    fake.set_faults(every_429=2, retry_after_429="0")
    with services.exchange() as rest:
        rest.server_time()
        rest.server_time()  # the 2nd request gets a 429; the retry succeeds
    fake.clear_faults()
    fake.set_faults(every_drop=1)
    with services.exchange() as rest, pytest.raises(ExchangeUnavailable):
        rest.klines("BTCUSDT", "5m", limit=2)  # dropped twice: no answer at all
    fake.clear_faults()
    fake.set_faults(every_418=1, retry_after_418="1")
    with services.exchange() as rest, pytest.raises(IPBanned):
        rest.ping()

    samples = scrape(app)

    requests = "candlecast_exchange_requests_total"
    assert value(samples, requests, endpoint="/api/v3/time", status="200") == 2
    assert value(samples, requests, endpoint="/api/v3/time", status="429") == 1
    assert value(samples, requests, endpoint="/api/v3/ping", status="418") == 1
    assert value(samples, requests, endpoint="/api/v3/klines", status="error") == 2
    assert value(samples, "candlecast_exchange_weight_used") > 0
    assert value(samples, "candlecast_exchange_weight_limit") == 1200
    services.close()


async def test_stream_connections_reconnects_and_messages(
    fake_exchange: Any, tmp_path: Path
) -> None:
    fake = fake_exchange(start="2025-09-27T00:04:00Z", speed=300, ws_update_ms=50)
    services = _sqlite_services(tmp_path)
    app = create_app(services, Runtime())
    metrics = services.metrics
    assert metrics is not None
    stream = KlineStream(
        ws_base_url=fake.ws_url,
        symbol="BTCUSDT",
        interval="5m",
        backoff_base=0.05,
        backoff_max=0.2,
        observer=metrics,
    )
    closes = 0
    async with asyncio.timeout(15):
        async for event in stream:
            if isinstance(event, KlineClosed):
                closes += 1
                if closes == 1:
                    await asyncio.to_thread(fake.drop_websockets)
                if closes == 2:
                    break
    await stream.close()

    samples = parse(await scrape_text(app))

    assert value(samples, "candlecast_stream_connections_total") == 2
    assert value(samples, "candlecast_stream_reconnects_total") == 1
    assert value(samples, "candlecast_stream_messages_total") >= 2
    services.close()


def test_http_requests_are_labelled_by_route_template(engine: Engine, database_url: str) -> None:
    api = client(engine, database_url)
    assert api.get("/api/jobs/987654").status_code == 404
    assert api.get("/api/jobs/123456").status_code == 404
    assert api.get("/no/such/page-31337").status_code == 404
    assert api.post("/api/train", headers={"Authorization": "Bearer wrong"}).status_code == 401

    text = asyncio.run(scrape_text(api.app))
    samples = parse(text)

    requests = "candlecast_http_requests_total"
    assert value(samples, requests, method="GET", route="/api/jobs/{job_id}", status="404") == 2
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="POST", route="/api/train", status="401") == 1
    count = "candlecast_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/api/jobs/{job_id}") == 2
    for raw in ("987654", "123456", "31337"):
        assert raw not in text, f"a raw path leaked into the labels: {raw}"


def test_metrics_expose_no_secret(engine: Engine, tmp_path: Path) -> None:
    db_password = "Pg-Secret-pw-4711"
    readonly_password = "Readonly-Secret-0815"
    database_url = f"postgresql://candlecast:{db_password}@127.0.0.1:5432/prod"
    api = client(engine, database_url, readonly_password=readonly_password, readonly_user="reader")
    api.post("/api/train", headers={"Authorization": f"Bearer {TOKEN}x"})
    api.get("/api/health", headers=AUTH)

    text = asyncio.run(scrape_text(api.app))

    assert "candlecast_http_requests_total" in text
    for secret in (TOKEN, db_password, readonly_password, "postgresql://", "Bearer"):
        assert secret not in text


PREFIX = "/candlecast"


def _stripping_proxy(app: Any, *, server_root_path: str = "") -> Any:
    """A reverse proxy that strips PREFIX, in front of an ASGI server that, like uvicorn run with
    --root-path, puts `server_root_path` back into root_path and path (the ASGI spec's way)."""

    async def proxy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        assert path.startswith(PREFIX + "/"), f"a request left the prefix: {path}"
        stripped = path[len(PREFIX) :]
        inner = {**scope, "path": server_root_path + stripped, "raw_path": None}
        inner["root_path"] = server_root_path
        await app(inner, receive, send)

    return proxy


@pytest.mark.parametrize("mode", ["app-setting", "server-root-path"])
async def test_docs_openapi_and_metrics_work_under_a_prefix(tmp_path: Path, mode: str) -> None:
    if mode == "app-setting":
        # CANDLECAST_ROOT_PATH set, served by a server that knows nothing of the prefix.
        app = create_app(_sqlite_services(tmp_path, root_path=PREFIX), Runtime())
        proxy = _stripping_proxy(app)
    else:
        # No setting, but the server says where the app lives (uvicorn --root-path).
        app = create_app(_sqlite_services(tmp_path), Runtime())
        proxy = _stripping_proxy(app, server_root_path=PREFIX)
    transport = httpx.ASGITransport(app=proxy)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://t{PREFIX}") as http:
        html = await http.get("/api/docs")
        assert html.status_code == 200
        urls = re.findall(r"""(?:href|src)=["']([^"']+)["']""", html.text)
        urls += re.findall(r"""url: ['"]([^'"]+)['"]""", html.text)
        assert len(urls) == 4, urls
        for url in urls:
            assert url.startswith(f"{PREFIX}/api/"), url
            served = await http.get(f"http://t{url}")
            assert served.status_code == 200, url
        assert "swagger-ui-bundle.js" in html.text and "cdn" not in html.text.lower()
        schema = (await http.get("/api/openapi.json")).json()
        assert schema["servers"] == [{"url": PREFIX}]
        assert "/metrics" in schema["paths"]
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "candlecast_http_requests_total" in metrics.text


def test_a_slow_database_read_never_holds_a_scrape(engine: Engine, database_url: str) -> None:
    load(engine, days=1)
    api = client(engine, database_url)
    app: Any = api.app
    store = app.state.metrics.store
    assert value(scrape(api.app), "candlecast_candles_stored", **PAIR) == 288
    load(engine, days=1, first=FIRST + DAY)
    # Any read counts as slow now: the scrape answers with the figures it has...
    store.max_wait = 0.0
    before = store.snapshot()
    page = asyncio.run(_get_metrics(api.app))
    assert value(parse(page), "candlecast_candles_stored", **PAIR) == 288
    # ...and the read it put off starts once the answer is sent.
    deadline = time.monotonic() + 10
    while store.snapshot() is before and time.monotonic() < deadline:
        time.sleep(0.05)
    after = parse(asyncio.run(_get_metrics(api.app)))
    assert value(after, "candlecast_candles_stored", **PAIR) == 2 * 288


async def _get_metrics(app: Any) -> str:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        return (await http.get("/metrics")).text
