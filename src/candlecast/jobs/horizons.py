"""Records a model's forecasts 3 and 12 candles ahead (ml.horizons) in the store, beside the
next-candle forecast and with the same exchange time, so that both pass the same honesty test:
made before candle t+1 closed."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import Connection

from candlecast.ml.horizons import HorizonForecast
from candlecast.store import horizons


def _finite(values: dict[str, float]) -> dict[str, float]:
    # JSON has no NaN (PostgreSQL's json type refuses it): a missing quantile is left out.
    return {key: float(v) for key, v in values.items() if math.isfinite(float(v))}


def entry_of(
    forecast: HorizonForecast,
    *,
    model_id: int,
    symbol: str,
    interval: str,
    made_at: int,
    made_at_exchange: int | None,
) -> horizons.HorizonEntry:
    """The store's record of one horizon forecast of a model."""
    baselines = _finite(forecast.baselines)
    return horizons.HorizonEntry(
        model_id=model_id,
        symbol=symbol,
        interval=interval,
        horizon=forecast.horizon,
        origin_open_time=forecast.origin_open_time,
        end_open_time=forecast.end_open_time,
        made_at=made_at,
        made_at_exchange=made_at_exchange,
        last_close=float(forecast.last_close),
        close_quantiles=_finite(forecast.close_quantiles),
        range=float(forecast.range),
        range_quantiles=_finite(forecast.range_quantiles),
        persistence_range=baselines.get("persistence_range"),
        random_walk_range=baselines.get("random_walk_range"),
        har_range=baselines.get("har_range"),
    )


def record(
    connection: Connection,
    *,
    forecasts: Sequence[HorizonForecast],
    model_id: int,
    symbol: str,
    interval: str,
    made_at: int,
    made_at_exchange: int | None,
    step: int,
) -> int:
    """Records each forecast unless refused (hindsight, or its origin already forecast);
    returns how many were recorded."""
    recorded = 0
    for forecast in forecasts:
        if not math.isfinite(forecast.range) or not math.isfinite(forecast.last_close):
            continue
        entry = entry_of(
            forecast,
            model_id=model_id,
            symbol=symbol,
            interval=interval,
            made_at=made_at,
            made_at_exchange=made_at_exchange,
        )
        first_close_time = forecast.origin_open_time + 2 * step - 1
        recorded += horizons.record(connection, entry=entry, first_close_time=first_close_time)
    return recorded
