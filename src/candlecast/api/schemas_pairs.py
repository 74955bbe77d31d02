"""The shapes of /api/pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PairForecastOut(BaseModel):
    """The pair's newest recorded forecast (of the next candle)."""

    target_time: str
    close: float
    close_lo: float
    close_hi: float
    prob_up: float


class PairSkillOut(BaseModel):
    """Skill over the last 7 days of scored forecasts: close against persistence, range against
    the naive last range (1 - MAE / baseline MAE; above 0 beats the baseline)."""

    close: float | None
    range: float | None
    forecasts: int


class PairOut(BaseModel):
    """One followed pair at a glance."""

    symbol: str
    interval: str
    added_at: str
    last_candle_time: str | None
    last_candle_age_seconds: float | None
    last_close: float | None
    change_24h_pct: float | None
    champion_id: int | None
    forecast: PairForecastOut | None
    skill_7d: PairSkillOut | None
    sparkline_24h: list[float]
    status: Literal["live", "degraded", "backfilling", "failed"]
    status_reason: str | None


class PairsResponse(BaseModel):
    """GET /api/pairs: every followed pair, in order (the first is every route's default)."""

    pairs: list[PairOut]


class PairIn(BaseModel):
    """POST /api/pairs: the pair to follow."""

    symbol: str = Field(description="e.g. ETHUSDT", max_length=40)
    interval: str = Field(description="e.g. 5m", max_length=8)
