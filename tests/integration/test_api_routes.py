"""The API's routes over real candles on SQLite and PostgreSQL: shapes, values, auth."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from candlecast.config import Settings
from candlecast.domain import iso_utc, parse_iso_utc
from candlecast.jobs import modeling, pipeline
from candlecast.store import candle_reads, predictions, registry
from tests.fake_exchange.fixtures import FakeExchangeFactory
from tests.integration.api_support import AUTH, FIRST, STEP, client, load

# Few trees: these tests check plumbing and shapes, not model quality.
FAST = {"n_estimators": 15, "classifier_estimators": 10}


@dataclass
class Trained:
    client: TestClient
    engine: Engine
    last: int
    model_id: int


def _fast_trainer(engine: Engine) -> Any:
    def trainer(settings: Settings, *, symbol: str, interval: str, days: float) -> dict[str, Any]:
        outcome = modeling.train_model(
            engine, symbol=symbol, interval=interval, days=days, params=FAST
        )
        return {
            "skipped": outcome.skipped,
            "model_id": outcome.model_id,
            "promoted": outcome.promoted,
            **outcome.details,
        }

    return trainer


@pytest.fixture
def trained(engine: Engine, database_url: str) -> Trained:
    """Six days of candles, a champion, its forecast, then one more candle and a refresh."""
    last = load(engine, days=3)
    outcome = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=3, params=FAST)
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    load(engine, days=STEP / 86_400_000, first=last + STEP)
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    app_client = client(engine, database_url, trainer=_fast_trainer(engine))
    return Trained(app_client, engine, last + STEP, int(outcome.model_id or 0))


def test_series_has_the_old_fields_and_a_forecast_on_the_last_point(trained: Trained) -> None:
    body = trained.client.get("/api/series", params={"fallback_days": 1}).json()
    points = body["points"]
    assert len(points) == 288 and body["model_id"] == trained.model_id
    first = points[0]
    assert set(first) == {"real", "pred", "cls", "err"}
    assert set(first["real"]) == {"time", "open", "high", "low", "close", "volume"}
    assert set(first["pred"]) == {"open_next", "high_next", "low_next", "close_next", "amp_next"}
    assert set(first["cls"]) == {"dir_next", "prob_up", "prob_down"}
    assert set(first["err"]) == {"close_abs", "close_signed", "amp_abs", "amp_signed"}
    newest = points[-1]
    assert newest["real"]["time"] == iso_utc(trained.last)
    assert newest["pred"] is not None and newest["cls"] is not None and newest["err"] is None
    _series_errors_compare_the_forecast_with_the_realized_next_candle(trained)
    _series_columns_and_downsampling(trained)


def _series_errors_compare_the_forecast_with_the_realized_next_candle(trained: Trained) -> None:
    start, end = iso_utc(trained.last - 20 * STEP), iso_utc(trained.last)
    points = trained.client.get("/api/series", params={"start": start, "end": end}).json()["points"]
    with trained.engine.connect() as connection:
        real = candle_reads.read_frame(
            connection, start=trained.last - 20 * STEP, symbol="BTCUSDT", interval="5m"
        )
        stored = predictions.read_columns(
            connection, model_id=trained.model_id, start=trained.last - 20 * STEP, end=trained.last
        )
    assert len(points) == len(real) == 21
    for i, point in enumerate(points[:-1]):
        nxt = real.iloc[i + 1]
        close_next = float(stored["close_next"][i])
        assert point["pred"]["close_next"] == pytest.approx(close_next, rel=1e-9)
        assert point["err"]["close_signed"] == pytest.approx(close_next - nxt["close"], abs=1e-4)
        assert point["err"]["close_abs"] == pytest.approx(abs(close_next - nxt["close"]), abs=1e-4)
        amp = float(str(stored["range_next"][i])) - (nxt["high"] - nxt["low"])
        assert point["err"]["amp_abs"] == pytest.approx(abs(amp), abs=1e-4)
        assert point["err"]["amp_signed"] == pytest.approx(amp, abs=1e-4)
        assert point["cls"]["prob_up"] + point["cls"]["prob_down"] == pytest.approx(1)
    assert points[-1]["err"] is None


def _series_columns_and_downsampling(trained: Trained) -> None:
    columns = trained.client.get(
        "/api/series", params={"fallback_days": 2, "format": "columns"}
    ).json()
    assert "time" in columns, columns
    assert len(columns["time"]) == len(columns["close"]) == len(columns["err_close_abs"]) == 576
    assert columns["err_close_abs"][-1] is None and columns["close_next"][-1] is not None
    small = trained.client.get(
        "/api/series", params={"fallback_days": 2, "format": "columns", "max_points": 50}
    ).json()
    assert len(small["time"]) <= 50
    assert max(small["high"]) == max(columns["high"]) and min(small["low"]) == min(columns["low"])
    assert small["close"][-1] == columns["close"][-1]
    assert sum(small["volume"]) == pytest.approx(sum(columns["volume"]))
    points = trained.client.get("/api/series", params={"fallback_days": 2, "max_points": 50})
    assert points.json()["points"][-1]["err"] is None


def test_metrics_forecast_models_jobs_and_futures(trained: Trained) -> None:
    api = trained.client
    metrics = api.get("/api/metrics").json()
    for name in (
        "mae",
        "mape",
        "smape",
        "samples",
        "split_train",
        "split_total",
        "started_at",
        "finished_at",
        "validation_start",
        "baselines",
        "skill",
    ):
        assert name in metrics, name
    assert parse_iso_utc(metrics["validation_start"]) > FIRST
    forecast = api.get("/api/forecast").json()
    assert forecast["model_id"] == trained.model_id and forecast["current"] is True
    assert forecast["target_time"] == iso_utc(trained.last + STEP)
    assert forecast["low"] <= forecast["close"] <= forecast["high"]
    assert forecast["close_lo"] <= forecast["close"] <= forecast["close_hi"]
    models = api.get("/api/models").json()
    assert models["champion_id"] == trained.model_id
    assert models["models"][0]["baselines"]["close"]["baseline"] == "persistence"
    jobs = api.get("/api/jobs").json()
    assert jobs["runs"][0]["name"] == "train" and "next_runs" in jobs
    futures = api.get("/api/futures").json()["points"]
    fields = {"time", "pred_close", "real_close", "err_close", "close_lo", "close_hi", "prob_up"}
    assert futures and all(set(p) >= fields for p in futures)
    assert all(p["close_lo"] <= p["pred_close"] <= p["close_hi"] for p in futures)
    scored = [p for p in futures if p["real_close"] is not None]
    assert len(scored) == 1
    assert scored[0]["err_close"] == pytest.approx(
        scored[0]["pred_close"] - scored[0]["real_close"]
    )
    newest = trained.client.get("/api/candles", params={"limit": 3}).json()
    assert [c["time"] for c in newest["candles"]][-1] == iso_utc(trained.last)
    assert isinstance(newest["candles"][0]["close"], str)
    text = trained.client.get("/api/candles", params={"limit": 3, "format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["close"] for r in rows] == [c["close"] for c in newest["candles"]]


def test_posts_need_the_bearer_token_and_train_answers_metrics(trained: Trained) -> None:
    api = trained.client
    for path in ("/api/ingest", "/api/train", "/api/init/backfill", "/api/futures/update"):
        missing = api.post(path)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = api.post(path, headers={"Authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 401, path
    updated = api.post("/api/futures/update", headers=AUTH).json()
    assert updated == {**updated, "status": "ok", "updated": 0}
    body = api.post("/api/train", params={"days": 3}, headers=AUTH).json()
    assert {
        "status",
        "samples",
        "mae",
        "mape",
        "smape",
        "model_id",
        "promoted",
        "skipped",
        "baselines",
    } <= set(body)
    assert body["status"] == "ok" and body["samples"] > 0
    with trained.engine.connect() as connection:
        assert registry.get_model(connection, model_id=body["model_id"]) is not None


def test_ingest_and_backfill_from_the_exchange(
    engine: Engine, database_url: str, fake_exchange: FakeExchangeFactory
) -> None:
    last = load(engine, days=2)
    fake = fake_exchange(start=iso_utc(last + 4 * STEP + 1000), speed=0)
    api = client(engine, database_url, binance_url=fake.base_url, backfill_days=1)
    ingested = api.post("/api/ingest", headers=AUTH).json()
    assert ingested["status"] == "ok" and ingested["inserted"] == 3
    assert ingested["futures_updated"] == 0
    backfilled = api.post("/api/init/backfill", params={"days": 3}, headers=AUTH).json()
    assert {"status", "fetched", "inserted", "calls", "days"} <= set(backfilled)
    assert backfilled["days"] == 3 and backfilled["inserted"] > 0 and backfilled["calls"] >= 1
