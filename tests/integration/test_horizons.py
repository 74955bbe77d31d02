"""Horizon forecasts (3 and 12 candles ahead) on SQLite and PostgreSQL: recorded once and
honestly, scored only when all their candles are stored, purged with their pair, and served by
/api/forecast and /api/horizons."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select

from candlecast.domain import Pair, iso_utc
from candlecast.jobs.pipeline import score_horizons
from candlecast.store import horizons, ledger, pairs, registry
from candlecast.store.db import write_transaction
from candlecast.store.tables import candles, horizon_forecasts
from tests.integration.api_support import DAY, client, load

STEP = 300_000
KEYS = ("q025", "q050", "q100", "q250", "q500", "q750", "q900", "q950", "q975")
OFFSETS = (-2.0, -1.6, -1.2, -0.6, 0.0, 0.6, 1.2, 1.6, 2.0)


def _entry(
    *, origin: int, horizon: int, close: float, spread: float = 100.0, model_id: int = 1
) -> horizons.HorizonEntry:
    return horizons.HorizonEntry(
        model_id=model_id,
        symbol="BTCUSDT",
        interval="5m",
        horizon=horizon,
        origin_open_time=origin,
        end_open_time=origin + horizon * STEP,
        made_at=origin + STEP + 50,
        made_at_exchange=origin + STEP + 40,
        last_close=close,
        close_quantiles={k: close + spread * o for k, o in zip(KEYS, OFFSETS, strict=True)},
        range=spread,
        range_quantiles={k: spread * (1 + o / 4) for k, o in zip(KEYS, OFFSETS, strict=True)},
        persistence_range=spread * 0.9,
        random_walk_range=spread * 1.1,
        har_range=None,
    )


def _record(engine: Engine, entry: horizons.HorizonEntry) -> bool:
    with write_transaction(engine) as connection:
        return horizons.record(
            connection, entry=entry, first_close_time=entry.origin_open_time + 2 * STEP - 1
        )


def _candles(engine: Engine, first: int, count: int) -> None:
    load(engine, days=count * STEP / DAY, first=first)


def _stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(horizon_forecasts).order_by(
                horizon_forecasts.c.horizon, horizon_forecasts.c.origin_open_time
            )
        ).all()
    return [dict(row._mapping) for row in rows]


def _exact(engine: Engine, first: int, last: int) -> tuple[Decimal, Decimal]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(candles.c.high, candles.c.low, candles.c.close)
            .where(candles.c.open_time >= first, candles.c.open_time <= last)
            .order_by(candles.c.open_time)
        ).all()
    high = max(Decimal(r.high) for r in rows)
    low = min(Decimal(r.low) for r in rows)
    return Decimal(rows[-1].close), high - low


def test_the_first_forecast_of_an_origin_wins_and_is_never_rewritten(engine: Engine) -> None:
    origin = load(engine, days=1)
    assert _record(engine, _entry(origin=origin, horizon=3, close=100.0))
    assert not _record(engine, _entry(origin=origin, horizon=3, close=900.0, model_id=2))
    assert _record(engine, _entry(origin=origin, horizon=12, close=100.0))
    stored = _stored(engine)
    assert [(r["horizon"], r["model_id"], r["last_close"]) for r in stored] == [
        (3, 1, 100.0),
        (12, 1, 100.0),
    ]
    assert stored[0]["close_quantiles"]["q500"] == 100.0
    assert stored[0]["har_range"] is None and stored[0]["real_close"] is None


def test_a_forecast_made_with_hindsight_is_refused(engine: Engine) -> None:
    origin = load(engine, days=1)
    late = _entry(origin=origin, horizon=3, close=1.0)
    with write_transaction(engine) as connection:
        # Made at the exchange after candle t+1 had closed.
        assert not horizons.record(connection, entry=late, first_close_time=origin + STEP)
    _candles(engine, origin + STEP, 1)
    # Candle t+1 is stored: what it says is already known.
    assert not _record(engine, _entry(origin=origin, horizon=3, close=1.0))
    assert _stored(engine) == []


def test_scoring_waits_for_all_h_candles_then_fills_exact_values_once(engine: Engine) -> None:
    origin = load(engine, days=1)
    assert _record(engine, _entry(origin=origin, horizon=3, close=100.0))
    assert _record(engine, _entry(origin=origin, horizon=12, close=100.0))
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 0
    _candles(engine, origin + STEP, 2)
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 0
    _candles(engine, origin + 3 * STEP, 1)
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 1
    three, twelve = _stored(engine)
    assert (three["real_close"], three["real_range"]) == _exact(
        engine, origin + STEP, origin + 3 * STEP
    )
    assert three["scored_at"] is not None and twelve["scored_at"] is None
    scored_at = three["scored_at"]
    _candles(engine, origin + 4 * STEP, 9)
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 1
    three, twelve = _stored(engine)
    assert three["scored_at"] == scored_at
    assert (twelve["real_close"], twelve["real_range"]) == _exact(
        engine, origin + STEP, origin + 12 * STEP
    )
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 0


def test_a_missing_candle_leaves_the_forecast_unscored_until_it_is_filled(engine: Engine) -> None:
    origin = load(engine, days=1)
    assert _record(engine, _entry(origin=origin, horizon=3, close=100.0))
    _candles(engine, origin + STEP, 1)
    _candles(engine, origin + 3 * STEP, 5)  # t+2 is missing
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 0
    assert _stored(engine)[0]["real_range"] is None
    _candles(engine, origin + 2 * STEP, 1)
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 1


def test_purging_the_pair_deletes_its_horizon_forecasts(engine: Engine) -> None:
    origin = load(engine, days=1)
    with write_transaction(engine) as connection:
        pairs.add(connection, Pair("BTCUSDT", "5m"), added_at=0)
        pairs.add(connection, Pair("ETHUSDT", "5m"), added_at=0)
    assert _record(engine, _entry(origin=origin, horizon=3, close=1.0))
    assert _record(engine, _entry(origin=origin, horizon=12, close=1.0))
    assert _record(engine, replace(_entry(origin=origin, horizon=3, close=1.0), symbol="ETHUSDT"))
    with write_transaction(engine) as connection:
        counts = pairs.purge(connection, Pair("BTCUSDT", "5m"), removed_at=1)
    assert counts["horizon_forecasts"] == 2
    assert [r["symbol"] for r in _stored(engine)] == ["ETHUSDT"]


def _champion_with_forecast(engine: Engine, origin: int) -> int:
    """A champion model and its ledger forecast for candle t+1, as /api/forecast needs."""
    with write_transaction(engine) as connection:
        model_id = registry.register_model(
            connection,
            created_at=origin,
            symbol="BTCUSDT",
            interval="5m",
            algorithm="test",
            params={},
            train_start=origin - DAY,
            train_end=origin,
            data_fingerprint="test",
            metrics={},
            artifact=b"not a model: /api/forecast reads only the registry and the ledger",
        )
        registry.decide(connection, model_id=model_id, promote=True, decision={})
        price = Decimal("100")
        assert ledger.record(
            connection,
            forecast=ledger.Forecast(
                model_id=model_id,
                symbol="BTCUSDT",
                interval="5m",
                made_at=origin + STEP,
                made_at_exchange=None,
                asof_open_time=origin,
                target_open_time=origin + STEP,
                asof_close=price,
                pred_open=price,
                pred_high=price + 1,
                pred_low=price - 1,
                pred_close=price,
                pred_range=Decimal(2),
                close_lo=price - 1,
                close_hi=price + 1,
                interval_level=Decimal("0.9"),
                prob_up=Decimal("0.5"),
                baselines={},
            ),
            close_time=origin + 2 * STEP - 1,
        )
    return model_id


def test_forecast_serves_the_newest_forecast_of_each_horizon(
    engine: Engine, database_url: str
) -> None:
    previous = load(engine, days=1 - STEP / DAY)
    origin = previous + STEP
    model_id = _champion_with_forecast(engine, origin)
    api = client(engine, database_url)
    assert api.get("/api/forecast").json()["horizons"] == []
    for horizon in (3, 12):
        assert _record(engine, _entry(origin=previous, horizon=horizon, close=90.0))
    _candles(engine, origin, 1)
    for horizon in (3, 12):
        assert _record(
            engine, _entry(origin=origin, horizon=horizon, close=100.0, model_id=model_id)
        )
    api = client(engine, database_url)
    body = api.get("/api/forecast").json()
    assert [h["horizon"] for h in body["horizons"]] == [3, 12]
    three = body["horizons"][0]
    assert three["origin_time_ms"] == origin and three["current"] is True
    assert three["end_time_ms"] == origin + 3 * STEP
    assert three["end_time"] == iso_utc(origin + 3 * STEP)
    assert three["model_id"] == model_id
    assert (three["close"], three["close_lo"], three["close_hi"]) == (100.0, -60.0, 260.0)
    assert three["close_quantiles"]["q975"] == 300.0
    assert three["range"] == 100.0 and three["range_quantiles"]["q500"] == 100.0
    assert three["baselines"] == {
        "persistence_range": 90.0,
        "random_walk_range": pytest.approx(110.0),
        "har_range": None,
    }


def test_horizons_route_scores_each_horizon_against_its_baselines(
    engine: Engine, database_url: str
) -> None:
    first = load(engine, days=1)
    origins = [first - 2 * STEP, first - STEP, first]
    with engine.connect() as connection:
        # Realistic closes: each forecast is centred on its origin's real close.
        closes = {
            int(t): float(c)
            for t, c in connection.execute(
                select(candles.c.open_time, candles.c.close).where(candles.c.open_time.in_(origins))
            ).all()
        }
    # Recorded before their candles are stored, as the pipeline does.
    with engine.begin() as connection:
        connection.execute(candles.delete().where(candles.c.open_time > origins[0]))
    for origin in origins:
        assert _record(engine, _entry(origin=origin, horizon=3, close=closes[origin]))
    _candles(engine, origins[0] + STEP, 12)
    assert score_horizons(engine, symbol="BTCUSDT", interval="5m") == 3
    api = client(engine, database_url)
    body = api.get("/api/horizons?days=1").json()
    assert body["end"] == iso_utc(origins[-1] + 3 * STEP)
    (three,) = body["horizons"]
    assert (three["horizon"], three["forecasts"], three["scored"]) == (3, 3, 3)
    points = three["points"]
    assert points["origin_time"] == origins
    realized = [_exact(engine, o + STEP, o + 3 * STEP) for o in origins]
    assert points["real_close"] == [float(c) for c, _ in realized]
    assert points["real_range"] == [float(r) for _, r in realized]
    metrics = three["metrics"]
    errors = [abs(100.0 - float(r)) for _, r in realized]
    assert metrics["range"]["mae"] == pytest.approx(sum(errors) / 3)
    persistence = metrics["range"]["baselines"]["persistence"]
    assert persistence["mae"] == pytest.approx(sum(abs(90.0 - float(r)) for _, r in realized) / 3)
    assert persistence["skill"] == pytest.approx(1 - metrics["range"]["mae"] / persistence["mae"])
    assert metrics["range"]["baselines"]["har"]["rows"] == 0
    assert set(metrics["close"]["coverage"]) == {"50", "80", "90", "95"}
    assert metrics["close"]["persistence_crps"] == pytest.approx(
        sum(abs(float(c) - closes[o]) for o, (c, _) in zip(origins, realized, strict=True)) / 3
    )
    assert api.get("/api/horizons?days=91").status_code == 422
