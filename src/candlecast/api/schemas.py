"""Response models: the API's contract as OpenAPI shows it. Times are ISO 8601 UTC with Z."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from candlecast.api.schemas_horizons import HorizonForecastOut


class IngestResponse(BaseModel):
    """POST /api/ingest."""

    status: Literal["ok"] = "ok"
    inserted: int
    futures_updated: int = Field(description="Ledger entries scored + forecasts recorded")
    fetched: int
    repaired: int
    calls: int
    scored: int
    recorded: int
    materialized: int


class TrainBody(BaseModel):
    """Optional JSON body of POST /api/train (query parameters win)."""

    days: int | None = Field(default=None, ge=1, le=90)


class TrainResponse(BaseModel):
    """POST /api/train: validation metrics for the next close."""

    status: Literal["ok"] = "ok"
    samples: int
    mae: float | None
    mape: float | None
    smape: float | None
    model_id: int | None
    promoted: bool
    skipped: bool
    reason: str | None = None
    days: int
    baselines: dict[str, Any] = Field(description="Per target: baseline name, its MAE, skill")


class AcceptedResponse(BaseModel):
    """202 from a long POST: the job goes on; follow it at `Location: /api/jobs/{job_id}`."""

    status: Literal["accepted"] = "accepted"
    job_id: int
    # Set when the job waits in the task queue (PostgreSQL): its id is the queue job's, to
    # follow at /api/queue/jobs/{job_id}; otherwise it is a job run at /api/jobs/{job_id}.
    queue: str | None = None


class BackfillBody(BaseModel):
    """Optional JSON body of POST /api/init/backfill (query parameters win)."""

    days: int | None = Field(default=None, ge=1, le=90)
    symbol: str | None = None
    interval: str | None = None
    limit: int | None = Field(default=None, ge=1, le=1000)


class BackfillResponse(BaseModel):
    """POST /api/init/backfill."""

    status: Literal["ok"] = "ok"
    fetched: int
    inserted: int
    calls: int
    days: int
    repaired: int
    symbol: str
    interval: str


class SeriesReal(BaseModel):
    time: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class SeriesPred(BaseModel):
    open_next: float
    high_next: float
    low_next: float
    close_next: float
    amp_next: float = Field(description="Predicted high - low of the next candle")


class SeriesCls(BaseModel):
    dir_next: int = Field(description="1 if the next close is predicted up (prob_up >= 0.5)")
    prob_up: float
    prob_down: float


class SeriesErr(BaseModel):
    close_abs: float
    close_signed: float = Field(description="Predicted minus realized next close")
    amp_abs: float
    amp_signed: float = Field(description="Predicted minus realized next range (high - low)")


class SeriesPoint(BaseModel):
    real: SeriesReal
    pred: SeriesPred | None
    cls: SeriesCls | None
    err: SeriesErr | None


class SeriesResponse(BaseModel):
    """GET /api/series (format=points); format=columns returns parallel arrays instead."""

    points: list[SeriesPoint]
    symbol: str
    interval: str
    model_id: int | None
    start: str
    end: str
    count: int
    bucket_ms: int


class SeriesColumnsResponse(BaseModel):
    """GET /api/series?format=columns: the same series as parallel arrays (null: no value)."""

    time: list[int] = Field(description="Open times, epoch ms")
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    open_next: list[float | None]
    high_next: list[float | None]
    low_next: list[float | None]
    close_next: list[float | None]
    amp_next: list[float | None]
    dir_next: list[float | None]
    prob_up: list[float | None]
    prob_down: list[float | None]
    err_close_abs: list[float | None]
    err_close_signed: list[float | None]
    err_amp_abs: list[float | None]
    err_amp_signed: list[float | None]
    symbol: str
    interval: str
    model_id: int | None
    start: str
    end: str
    count: int
    bucket_ms: int


class MetricsResponse(BaseModel):
    """GET /api/metrics: the champion's validation metrics for the next close."""

    mae: float | None
    mape: float | None
    smape: float | None
    samples: int
    split_train: int
    split_total: int
    started_at: str | None
    finished_at: str | None
    validation_start: str
    model_id: int
    baselines: dict[str, Any]
    skill: dict[str, float | None]
    validation: dict[str, Any]


class FuturesPoint(BaseModel):
    time: str = Field(description="Open time of the forecast (target) candle")
    pred_close: float
    real_close: float | None
    err_close: float | None = Field(description="Predicted minus realized close")
    model_id: int
    close_lo: float = Field(description="Lower end of the close interval")
    close_hi: float = Field(description="Upper end of the close interval")
    prob_up: float = Field(description="Forecast probability that the close rises")
    last_close: float = Field(description="The close it was made from: persistence's forecast")
    quantiles: dict[str, float] | None = Field(
        default=None, description="The forecast's quantiles as in /api/forecast; null if none"
    )


class FuturesResponse(BaseModel):
    points: list[FuturesPoint]


class FuturesUpdateResponse(BaseModel):
    status: Literal["ok"] = "ok"
    updated: int
    scored: int
    recorded: int
    materialized: int


class ConnectionOut(BaseModel):
    """How this process reaches the exchange, and what to do when it cannot."""

    state: Literal["live", "degraded", "offline", "starting", "passive"]
    reason: str | None
    hint: str | None
    next_retry_at: str | None


class HealthResponse(BaseModel):
    """GET /api/health; 200 when healthy, else 503 with the same body."""

    status: Literal["healthy", "unhealthy"]
    problems: list[str]
    database: bool
    last_candle_time: str | None
    last_candle_age_seconds: float | None
    stale_after_seconds: float
    champion_id: int | None
    stream_enabled: bool
    stream_connected: bool
    scheduler_enabled: bool
    scheduler_running: bool
    exchange_error: str | None = Field(
        default=None, description="The scheduler's last exchange failure; null once it answers"
    )
    connection: ConnectionOut
    exchange_time: str = Field(description="The exchange's clock now (host clock + offset)")
    exchange_clock_offset_ms: int | None = Field(
        description="Exchange minus host clock, ms; null until the exchange has answered"
    )
    version: int


class CandleOut(BaseModel):
    time: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: str
    quote_volume: str | None
    trades: int | None
    taker_buy_base: str | None
    taker_buy_quote: str | None


class CandlesResponse(BaseModel):
    """Exact decimal strings, as the exchange wrote them."""

    symbol: str
    interval: str
    candles: list[CandleOut]
    truncated: bool


class ForecastResponse(BaseModel):
    """GET /api/forecast: the champion's newest recorded forecast."""

    model_id: int
    symbol: str
    interval: str
    asof_time: str
    target_time: str
    made_at: str
    last_close: float
    open: float
    high: float
    low: float
    close: float
    range: float
    close_lo: float
    close_hi: float
    interval_level: float
    prob_up: float
    prob_down: float
    baselines: dict[str, float]
    quantiles: dict[str, float] | None = Field(
        default=None,
        description="Quantiles of the next close, high, low and range by name: close_q050 is the "
        "5% quantile of the close, range_q975 the 97.5% of the range (per mille); close_q050 and "
        "close_q950 equal close_lo and close_hi. Null for models without quantiles.",
    )
    current: bool = Field(description="True while the target is the candle after the newest")
    horizons: list[HorizonForecastOut] = Field(
        default_factory=list,
        description="The newest forecast 3 and 12 candles ahead (one per horizon; empty before "
        "any): the close's quantiles with its 90% interval, and the range over the horizon",
    )


class ModelOut(BaseModel):
    id: int
    created_at: str
    status: str
    algorithm: str
    train_start: str
    train_end: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    baselines: dict[str, Any]
    decision: dict[str, Any] | None


class ModelsResponse(BaseModel):
    champion_id: int | None
    models: list[ModelOut]


class JobOut(BaseModel):
    id: int
    name: str
    symbol: str | None
    interval: str | None
    status: str
    started_at: str
    finished_at: str | None
    duration_seconds: float | None
    details: dict[str, Any]
    host: str | None


class JobsResponse(BaseModel):
    runs: list[JobOut]
    next_runs: list[dict[str, Any]]
    scheduler_enabled: bool
    scheduler_running: bool
