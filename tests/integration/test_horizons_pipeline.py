"""Horizon forecasts from ml.horizons into the store: HorizonForecast values recorded and scored
like the ledger's, the store's exact realized values agreeing with ml.horizons.realized, and the
champion's forecasts recorded beside its next-candle forecast with the same exchange time."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from candlecast.jobs import horizons as horizon_jobs
from candlecast.jobs import modeling, pipeline
from candlecast.ml.horizons import HORIZONS, HorizonForecast, realized
from candlecast.store import candle_reads, ledger
from candlecast.store.db import write_transaction
from candlecast.store.tables import horizon_forecasts
from tests.integration.api_support import DAY, client, load

STEP = 300_000
KEYS = ("q025", "q050", "q100", "q250", "q500", "q750", "q900", "q950", "q975")


def _forecast(origin: int, horizon: int, close: float) -> HorizonForecast:
    levels = [close + 10.0 * (i - 4) for i in range(len(KEYS))]
    return HorizonForecast(
        horizon=horizon,
        origin_open_time=origin,
        end_open_time=origin + horizon * STEP,
        last_close=close,
        close_quantiles=dict(zip(KEYS, levels, strict=True)),
        range=50.0,
        range_quantiles={k: 30.0 + 5.0 * i for i, k in enumerate(KEYS)},
        baselines={"persistence_range": 40.0, "random_walk_range": float("nan"), "har_range": 45.0},
    )


def _record(engine: Engine, forecasts: list[HorizonForecast], *, made_at_exchange: int) -> int:
    with write_transaction(engine) as connection:
        return horizon_jobs.record(
            connection,
            forecasts=forecasts,
            model_id=7,
            symbol="BTCUSDT",
            interval="5m",
            made_at=made_at_exchange,
            made_at_exchange=made_at_exchange,
            step=STEP,
        )


def test_horizon_forecasts_are_recorded_once_and_scored_as_ml_computes_them(
    engine: Engine,
) -> None:
    origin = load(engine, days=1)
    made = [_forecast(origin, h, 100.0) for h in HORIZONS]
    late = origin + 2 * STEP
    assert _record(engine, made, made_at_exchange=late) == 0  # after candle t+1 closed
    assert _record(engine, made, made_at_exchange=origin + STEP + 5) == len(HORIZONS)
    assert _record(engine, made, made_at_exchange=origin + STEP + 6) == 0
    with engine.connect() as connection:
        rows = connection.execute(select(horizon_forecasts)).all()
    assert {r.random_walk_range for r in rows} == {None}  # NaN: no value, never NaN in JSON
    load(engine, days=max(HORIZONS) * STEP / DAY, first=origin + STEP)
    assert pipeline.score_horizons(engine, symbol="BTCUSDT", interval="5m") == len(HORIZONS)
    with engine.connect() as connection:
        frame = candle_reads.read_frame(connection, symbol="BTCUSDT", interval="5m")
        rows = connection.execute(select(horizon_forecasts)).all()
    for row in rows:
        expected = realized(frame, origin, row.horizon, STEP)
        assert expected is not None
        # The store's are exact decimals; ml's range is a float difference of floats.
        assert (float(row.real_close), float(row.real_range)) == pytest.approx(expected, rel=1e-12)


def test_the_champion_records_its_horizons_with_its_next_candle_forecast(
    engine: Engine, database_url: str
) -> None:
    last = load(engine, days=6)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    clock = last + STEP + 1234  # candle t+1 is still open at the exchange
    made = modeling.forecast_next(
        engine, symbol="BTCUSDT", interval="5m", exchange_clock=lambda: clock
    )
    assert made is not None
    with engine.connect() as connection:
        rows = connection.execute(
            select(horizon_forecasts).order_by(horizon_forecasts.c.horizon)
        ).all()
        entry = ledger.latest(connection, symbol="BTCUSDT", interval="5m")
    assert entry is not None
    assert [r.horizon for r in rows] == list(HORIZONS)
    for row in rows:
        assert row.origin_open_time == last and row.end_open_time == last + row.horizon * STEP
        assert row.made_at_exchange == entry["made_at_exchange"] == clock
        assert row.model_id == made["model_id"]
        assert row.close_quantiles["q050"] <= row.close_quantiles["q500"]
        assert row.close_quantiles["q500"] <= row.close_quantiles["q950"]
    body = client(engine, database_url).get("/api/forecast").json()
    assert [h["horizon"] for h in body["horizons"]] == list(HORIZONS)
    assert all(h["current"] for h in body["horizons"])
    # The refresh after the candles arrive scores them.
    load(engine, days=max(HORIZONS) * STEP / DAY, first=last + STEP)
    outcome = pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    assert outcome["horizons_scored"] == len(HORIZONS)
