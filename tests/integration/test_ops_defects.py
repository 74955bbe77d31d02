"""Regression tests for defects found by running the service from outside (issue 8):
the ledger with unscored forecasts, health on a skewed host clock, untracked pairs, and long
POSTs that answer 202 with a job to follow."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Engine

from candlecast.bootstrap import Services
from candlecast.clock import ExchangeClock
from candlecast.config import Settings
from candlecast.domain import ExchangeUnavailable, IPBanned, RestrictedLocation, iso_utc
from candlecast.hints import exchange_hint, retry_delay_seconds
from candlecast.jobs import modeling, pipeline, sync
from candlecast.runtime import Runtime
from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.integration.api_support import AUTH, STEP, TOKEN, client, load

FAST = {"n_estimators": 15, "classifier_estimators": 10}
HOUR = 3_600_000


def test_ledger_window_of_only_unscored_forecasts_renders(
    engine: Engine, database_url: str
) -> None:
    """Fault: the window holds only forecasts whose candle has not closed (real_close null).
    Before the fix, /api/ledger answered 500 (float(None)) in the first minute after start."""
    load(engine, days=3)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=3, params=FAST)
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    api = client(engine, database_url)
    response = api.get("/api/ledger", params={"days": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["forecasts"] == 1
    assert body["points"]["real_close"] == [None]
    assert isinstance(body["points"]["pred_close"][0], float)


def test_ledger_window_with_scored_and_unscored_forecasts_renders(
    engine: Engine, database_url: str
) -> None:
    last = load(engine, days=3)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=3, params=FAST)
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    load(engine, days=STEP / 86_400_000, first=last + STEP)
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    body = client(engine, database_url).get("/api/ledger", params={"days": 1}).json()
    assert body["forecasts"] == 2
    real = body["points"]["real_close"]
    assert real[-1] is None and isinstance(real[0], float)


def test_health_uses_the_exchange_clock_not_the_host_clock(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    """Fault: the exchange's clock (a replayed 2025 market) is more than a year behind this
    host's. Expected: health 200, candle age in seconds by the exchange's clock."""
    last = load(engine, days=2)
    fake = fake_exchange(start=iso_utc(last + STEP + 60_000), speed=0)
    settings = Settings(database_url=database_url, api_token=TOKEN, binance_url=fake.base_url)
    services = Services(settings=settings, engine=engine)
    runtime = Runtime(clock=services.clock)
    app = client_over(services, runtime)
    # Before the exchange has answered, the host clock is all there is: the candle looks old.
    assert app.get("/api/health").status_code == 503
    with services.exchange() as exchange:
        sync.ingest(engine, exchange, symbol="BTCUSDT", interval="5m", days=2)
    health = app.get("/api/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["last_candle_age_seconds"] < 600
    assert body["exchange_clock_offset_ms"] < -300 * 86_400_000
    assert body["exchange_time"].startswith("2025-")


def client_over(services: Services, runtime: Runtime) -> Any:
    from fastapi.testclient import TestClient

    from candlecast.api import create_app

    return TestClient(create_app(services, runtime), raise_server_exceptions=False)


def test_exchange_clock_skewed_host_by_hours() -> None:
    """A host clock 5 hours fast: the exchange clock still reads the exchange's time."""
    true_now = [1_750_000_000_000]
    skew = 5 * HOUR
    clock = ExchangeClock(host_clock=lambda: true_now[0] + skew)
    assert clock.now_ms() == true_now[0] + skew
    clock.observe(true_now[0] + 20, sent_ms=true_now[0] + skew, received_ms=true_now[0] + skew + 40)
    true_now[0] += 10_000
    assert abs(clock.now_ms() - true_now[0]) <= 20


def test_health_of_a_pair_not_followed_is_404_not_an_outage(
    engine: Engine, database_url: str
) -> None:
    load(engine, days=1)
    api = client(engine, database_url)
    for params in ({"symbol": "NULL"}, {"symbol": "ETHUSDT"}, {"interval": "1h"}):
        response = api.get("/api/health", params=params)
        assert response.status_code == 404, (params, response.text)
        assert "not followed" in response.json()["detail"]


def _slow_trainer(engine: Engine, release: threading.Event) -> Any:
    def trainer(settings: Settings, *, symbol: str, interval: str, days: float) -> dict[str, Any]:
        release.wait(30)
        outcome = modeling.train_model(
            engine, symbol=symbol, interval=interval, days=days, params=FAST
        )
        return {"model_id": outcome.model_id, "promoted": outcome.promoted, **outcome.details}

    return trainer


def _follow(api: Any, location: str, *, until: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + until
    while True:
        job = api.get(location).json()
        if job["status"] != "running" or time.monotonic() > deadline:
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_train_past_the_wait_answers_202_and_the_job_can_be_followed(
    engine: Engine, database_url: str
) -> None:
    """Fault: a training slower than CANDLECAST_TRAIN_WAIT_SECONDS. Expected: 202 with a job id
    and Location, the job visible as running, then ok with the old answer in details.result."""
    load(engine, days=3)
    release = threading.Event()
    api = client(
        engine, database_url, trainer=_slow_trainer(engine, release), train_wait_seconds=0.2
    )
    response = api.post("/api/train", params={"days": 3}, headers=AUTH)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted" and body["job_id"] > 0
    assert response.headers["location"] == f"/api/jobs/{body['job_id']}"
    assert api.get(response.headers["location"]).json()["status"] == "running"
    release.set()
    job = _follow(api, response.headers["location"])
    assert job["status"] == "ok", job
    result = job["details"]["result"]
    assert result["status"] == "ok" and result["samples"] > 0 and result["model_id"] > 0


def test_train_within_the_wait_answers_as_before(engine: Engine, database_url: str) -> None:
    load(engine, days=3)
    release = threading.Event()
    release.set()
    api = client(engine, database_url, trainer=_slow_trainer(engine, release))
    response = api.post("/api/train", params={"days": 3}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok" and response.json()["samples"] > 0


def test_wait_false_answers_202_at_once_for_train_and_backfill(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    last = load(engine, days=3)
    fake = fake_exchange(start=iso_utc(last + 4 * STEP + 1000), speed=0)
    release = threading.Event()
    api = client(
        engine, database_url, trainer=_slow_trainer(engine, release), binance_url=fake.base_url
    )
    accepted = api.post("/api/train", params={"days": 3, "wait": "false"}, headers=AUTH)
    assert accepted.status_code == 202
    backfill = api.post("/api/init/backfill", params={"days": 3, "wait": "false"}, headers=AUTH)
    assert backfill.status_code == 202, backfill.text
    release.set()
    done = _follow(api, backfill.headers["location"])
    assert done["status"] == "ok" and done["details"]["result"]["inserted"] == 3
    assert done["name"] == "api-backfill" and done["symbol"] == "BTCUSDT"
    if database_url.startswith("postgresql"):
        # The task queue: the training waits for any worker (none runs in this test).
        assert accepted.json()["queue"] == "train"
        job = api.get(accepted.headers["location"]).json()
        assert job["task"] == "candlecast.train" and job["pair"] == "BTCUSDT:5m"
        assert job["status"] == "todo"
        return
    assert _follow(api, accepted.headers["location"])["status"] == "ok"


def test_a_failed_background_job_shows_its_error(engine: Engine, database_url: str) -> None:
    def failing(settings: Settings, **_: Any) -> dict[str, Any]:
        raise RuntimeError("the training child died")

    api = client(engine, database_url, trainer=failing, train_wait_seconds=0)
    accepted = api.post("/api/train", headers=AUTH)
    job = _follow(api, accepted.headers["location"])
    assert job["status"] == "failed" and "child died" in job["details"]["error"]
    assert api.get("/api/jobs/999999").status_code == 404


def test_offline_exchange_gives_actionable_words_and_a_retry_within_30_s() -> None:
    url = "https://data-api.binance.vision"
    down = ExchangeUnavailable("ConnectError: [Errno -3] Temporary failure in name resolution")
    assert "network" in exchange_hint(down, base_url=url)
    assert "CANDLECAST_BINANCE_URL" in exchange_hint(down, base_url=url)
    restricted = exchange_hint(RestrictedLocation("451"), base_url=url)
    assert "451" in restricted and "api1.binance.com" in restricted
    delays = [retry_delay_seconds(down, attempt=n, host_now_ms=0) for n in range(10)]
    assert max(delays) <= 30 and delays[0] < 5
    banned = IPBanned(until_ms=120_000)
    assert retry_delay_seconds(banned, attempt=0, host_now_ms=0) == 120


def test_runtime_connection_states() -> None:
    runtime = Runtime(scheduler_enabled=True, stream_enabled=True)
    assert runtime.connection()["state"] == "starting"
    runtime.update(
        exchange_error="ConnectError", exchange_hint="Check the network", next_retry_ms=0
    )
    offline = runtime.connection()
    assert offline["state"] == "offline" and offline["hint"] == "Check the network"
    assert offline["next_retry_at"] == "1970-01-01T00:00:00Z"
    runtime.update(exchange_error=None, exchange_hint=None, exchange_reached=True)
    assert runtime.connection()["state"] == "degraded"
    runtime.update(stream_connected=True)
    assert runtime.connection() == {
        "state": "live",
        "reason": None,
        "hint": None,
        "next_retry_at": None,
    }
    assert Runtime().connection()["state"] == "passive"
