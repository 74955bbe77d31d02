"""Response models of the horizon forecasts: /api/forecast's `horizons` and /api/horizons."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class HorizonForecastOut(BaseModel):
    """The newest recorded forecast of the close and the range `horizon` candles ahead."""

    horizon: int = Field(description="Candles ahead: the forecast ends with candle t + horizon")
    model_id: int
    origin_time: str = Field(description="Open time of candle t, the last closed one it used")
    origin_time_ms: int = Field(description="The same, epoch ms")
    end_time: str = Field(description="Open time of candle t + horizon, whose close it forecasts")
    end_time_ms: int = Field(description="The same, epoch ms")
    made_at: str
    last_close: float = Field(description="The close of candle t: persistence's forecast")
    close: float | None = Field(description="Median (q500) of the close of candle t + horizon")
    close_lo: float | None = Field(description="5% quantile of that close (the 90% interval)")
    close_hi: float | None = Field(description="95% quantile of that close (the 90% interval)")
    close_quantiles: dict[str, float] = Field(
        description="q025 ... q975 (per mille) -> price level of the close of candle t + horizon"
    )
    range: float = Field(description="Median forecast of max(high) - min(low) over t+1 .. t+h")
    range_quantiles: dict[str, float] = Field(description="q025 ... q975 -> range level")
    baselines: dict[str, float | None] = Field(
        description="The baselines' range forecasts made at the same time: persistence_range, "
        "random_walk_range (one-step volatility scaled by the random walk's square root of h) "
        "and har_range"
    )
    current: bool = Field(description="True while candle t is the newest stored candle")


class HorizonPoints(BaseModel):
    """One horizon's forecasts in the window as parallel columns (null: no value yet)."""

    origin_time: list[int] = Field(description="Open time of candle t, epoch ms")
    end_time: list[int] = Field(description="Open time of candle t + horizon, epoch ms")
    model_id: list[int]
    last_close: list[float]
    close: list[float | None]
    close_lo: list[float | None]
    close_hi: list[float | None]
    range: list[float]
    persistence_range: list[float | None]
    random_walk_range: list[float | None]
    har_range: list[float | None]
    real_close: list[float | None] = Field(description="Null until all h candles are stored")
    real_range: list[float | None]


class HorizonHistory(BaseModel):
    """One horizon's forecasts in the window and their scores."""

    horizon: int
    forecasts: int
    scored: int
    metrics: dict[str, Any] = Field(
        description="`range`: mae, baselines (persistence, random_walk, har: mae, model_mae, "
        "skill, rows), pinball, coverage; `close`: mae of the median, persistence_mae, skill, "
        "pinball, crps, persistence_crps, crps_skill, coverage (50/80/90/95). Null before any "
        "forecast is scored."
    )
    points: HorizonPoints


class HorizonsResponse(BaseModel):
    """GET /api/horizons."""

    symbol: str
    interval: str
    days: int
    start: str | None
    end: str | None
    horizons: list[HorizonHistory]
