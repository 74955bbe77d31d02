"""The old system's routes, kept under /api with their field names: ingest, train, backfill,
metrics and the prospective futures. (/api/series lives in routes_series.)"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from candlecast.api.auth import Authorized
from candlecast.api.background import wait_for
from candlecast.api.context import (
    ApiContext,
    BadParameter,
    Context,
    PairDep,
    parse_time,
    resolve_pair,
)
from candlecast.api.schemas import (
    AcceptedResponse,
    BackfillBody,
    BackfillResponse,
    FuturesPoint,
    FuturesResponse,
    FuturesUpdateResponse,
    IngestResponse,
    MetricsResponse,
    TrainBody,
    TrainResponse,
)
from candlecast.api.shaping import MAX_WINDOW_DAYS, baselines_of, clean, iso, skill_of
from candlecast.domain import JobAlreadyRunning, Pair, interval_ms
from candlecast.jobs.common import DAY_MS
from candlecast.jobs.modeling import NoData, NoModel
from candlecast.ml.quantiles import QUANTILE_COLUMNS
from candlecast.queue.client import QueueClient
from candlecast.store import candle_reads, ledger, registry, runs

router = APIRouter(prefix="/api", tags=["legacy"])
DaysQuery = Annotated[int | None, Query(ge=1, le=MAX_WINDOW_DAYS, description="1-90 days")]


@router.post("/ingest", response_model=IngestResponse, dependencies=Authorized)
def ingest(context: Context, pair: PairDep) -> IngestResponse:
    """Fetches every closed candle since the last stored one, then refreshes forecasts."""
    result = context.operations.ingest(pair)
    report, refreshed = result.report, result.refresh
    return IngestResponse(
        inserted=report.written.inserted,
        futures_updated=refreshed.scored + refreshed.recorded,
        fetched=report.fetched,
        repaired=report.written.repaired,
        calls=report.calls,
        scored=refreshed.scored,
        recorded=refreshed.recorded,
        materialized=refreshed.materialized,
    )


def _accepted(job_id: int) -> JSONResponse:
    return JSONResponse(
        AcceptedResponse(job_id=job_id).model_dump(),
        status_code=202,
        headers={"Location": f"/api/jobs/{job_id}"},
    )


async def _answer_or_accept(
    context: ApiContext, *, name: str, pair: Pair, wait: bool, work: Callable[[], BaseModel]
) -> BaseModel | JSONResponse:
    """Runs `work` as a recorded job; answers its result if it ends within
    CANDLECAST_TRAIN_WAIT_SECONDS (and `wait`), otherwise 202 with the job to follow."""
    job_id, future = await run_in_threadpool(
        context.background.submit,
        name=name,
        symbol=pair.symbol,
        interval=pair.interval,
        work=work,
    )
    seconds = context.services.settings.train_wait_seconds if wait else 0.0
    result = await wait_for(future, seconds)
    return _accepted(job_id) if result is None else result


WaitQuery = Annotated[
    bool,
    Query(description="Wait up to CANDLECAST_TRAIN_WAIT_SECONDS for the result; else 202"),
]
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": AcceptedResponse, "description": "Still running: follow Location"}
}


@router.post("/train", response_model=TrainResponse, responses=ACCEPTED, dependencies=Authorized)
async def train(
    context: Context,
    pair: PairDep,
    days: DaysQuery = None,
    wait: WaitQuery = True,
    body: TrainBody | None = None,
) -> Any:
    """Trains on the last `days` days in a child process; 409 while a training runs. Answers
    the result, or 202 with the job's id when it takes longer than the wait (or `wait=false`)."""
    services = context.services
    chosen = days or (body.days if body else None) or min(services.settings.train_days, 90)
    # Fail fast with 409 instead of paying for a child process that would only find the lock.
    await run_in_threadpool(context.operations.check_train_unlocked, pair)
    if not wait and context.queue is not None:
        return await _defer_training(context.queue, pair, chosen)
    return await _answer_or_accept(
        context, name="api-train", pair=pair, wait=wait, work=lambda: _train(context, pair, chosen)
    )


async def _defer_training(queue: QueueClient, pair: Pair, days: int) -> JSONResponse:
    """PostgreSQL: a `candlecast.train` task for any worker; 202 with the queue job's id."""
    job_id = await run_in_threadpool(queue.defer, "train", pair, days=days)
    if job_id is None:
        raise JobAlreadyRunning(f"a training of {pair} already waits in the queue")
    return JSONResponse(
        AcceptedResponse(job_id=job_id, queue="train").model_dump(),
        status_code=202,
        headers={"Location": f"/api/queue/jobs/{job_id}"},
    )


def _train(context: ApiContext, pair: Pair, days: int) -> TrainResponse:
    result = context.operations.train(pair, days=days)
    metrics: dict[str, Any] = {}
    if result.model_id is not None:
        with context.services.engine.connect() as connection:
            record = registry.get_model(connection, model_id=result.model_id)
        metrics = record.metrics if record is not None else {}
    return TrainResponse(
        samples=int(metrics.get("samples") or 0),
        mae=metrics.get("mae"),
        mape=metrics.get("mape"),
        smape=metrics.get("smape"),
        model_id=result.model_id,
        promoted=result.promoted,
        skipped=result.skipped,
        reason=result.reason,
        days=days,
        baselines=baselines_of(metrics),
    )


@router.post(
    "/init/backfill", response_model=BackfillResponse, responses=ACCEPTED, dependencies=Authorized
)
async def init_backfill(
    context: Context,
    days: DaysQuery = None,
    symbol: Annotated[str | None, Query(description="Default: the configured symbol")] = None,
    interval: Annotated[str | None, Query(description="Default: the configured one")] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=1000, description="Accepted for compatibility; pages are always 1000"),
    ] = None,
    wait: WaitQuery = True,
    body: BackfillBody | None = None,
) -> Any:
    """Fills the last `days` days of closed candles, fetching only what is missing. Answers
    the result, or 202 with the job's id when it takes longer than the wait (or `wait=false`)."""
    if body is not None:
        symbol = symbol or body.symbol
        interval = interval or body.interval
        days = days or body.days
    pair = resolve_pair(context, symbol, interval)
    chosen = days or min(context.services.settings.backfill_days, MAX_WINDOW_DAYS)
    return await _answer_or_accept(
        context,
        name="api-backfill",
        pair=pair,
        wait=wait,
        work=lambda: _backfill(context, pair, chosen),
    )


def _backfill(context: ApiContext, pair: Pair, days: int) -> BackfillResponse:
    report = context.operations.backfill(pair, days=days).report
    return BackfillResponse(
        fetched=report.fetched,
        inserted=report.written.inserted,
        calls=report.calls,
        days=days,
        repaired=report.written.repaired,
        symbol=pair.symbol,
        interval=pair.interval,
    )


@router.get("/metrics", response_model=MetricsResponse)
def metrics(context: Context, pair: PairDep) -> MetricsResponse:
    """The champion's validation metrics and when its training ran; 404 before any model."""
    with context.services.engine.connect() as connection:
        record = registry.champion(connection, symbol=pair.symbol, interval=pair.interval)
        if record is None:
            raise NoModel(f"no {pair.symbol} {pair.interval} model yet; POST /api/train first")
        run = next(
            (
                r
                for r in runs.recent_runs(
                    connection, name="train", limit=200, pair=(pair.symbol, pair.interval)
                )
                if r.details.get("model_id") == record.id and r.status == runs.OK
            ),
            None,
        )
    figures = record.metrics
    return MetricsResponse(
        mae=figures.get("mae"),
        mape=figures.get("mape"),
        smape=figures.get("smape"),
        samples=int(figures.get("samples") or 0),
        split_train=int(figures.get("split_train") or 0),
        split_total=int(figures.get("split_total") or 0),
        started_at=iso(run.started_at) if run else None,
        finished_at=iso(run.finished_at) if run else iso(record.created_at),
        validation_start=str(iso(int(figures.get("validation_start") or record.train_start))),
        model_id=record.id,
        baselines=baselines_of(figures),
        skill=skill_of(figures),
        validation=clean(figures.get("validation") or {}),
    )


@router.get("/futures", response_model=FuturesResponse)
def futures(
    context: Context,
    pair: PairDep,
    start: Annotated[str | None, Query(description="ISO 8601; default end - 1 day")] = None,
    end: Annotated[str | None, Query(description="ISO 8601; default: the newest forecast")] = None,
) -> FuturesResponse:
    """The prospective series from the prediction ledger: forecasts beside realized closes."""
    first, last = parse_time("start", start), parse_time("end", end)
    if first is not None and last is not None and first > last:
        raise BadParameter("start", "start is after end")
    if first is not None and last is not None and last - first > MAX_WINDOW_DAYS * DAY_MS:
        raise BadParameter("end", f"the window is longer than {MAX_WINDOW_DAYS} days")
    step = interval_ms(pair.interval)
    with context.services.engine.connect() as connection:
        if last is None:
            newest = ledger.latest(connection, symbol=pair.symbol, interval=pair.interval)
            last = int(newest["target_open_time"]) if newest else 0
        if first is None:
            first = last - DAY_MS + step
        frame = ledger.frame(
            connection, symbol=pair.symbol, interval=pair.interval, start=first, end=last
        )
        realized = candle_reads.read_columns(
            connection,
            symbol=pair.symbol,
            interval=pair.interval,
            start=first,
            end=last,
            names=("close",),
        )
    if frame.empty:
        return FuturesResponse(points=[])
    closes = dict(zip(realized["open_time"].tolist(), realized["close"].tolist(), strict=True))
    points = []
    names = (
        "target_open_time",
        "close_next",
        "model_id",
        "close_lo",
        "close_hi",
        "prob_up",
        "last_close",
    )
    quantile_names = [c for c in QUANTILE_COLUMNS if c in frame.columns]
    quantile_rows = frame[quantile_names].to_numpy(dtype="float64").tolist()
    for (target, pred_close, model_id, lo, hi, prob_up, last_close), q in zip(
        zip(*(frame[name].tolist() for name in names), strict=True), quantile_rows, strict=True
    ):
        real = closes.get(int(target))
        quantiles = {k: v for k, v in zip(quantile_names, q, strict=True) if math.isfinite(v)}
        points.append(
            FuturesPoint(
                time=str(iso(int(target))),
                pred_close=float(pred_close),
                real_close=None if real is None else float(real),
                err_close=None if real is None else float(pred_close) - float(real),
                model_id=int(model_id),
                close_lo=float(lo),
                close_hi=float(hi),
                prob_up=float(prob_up),
                last_close=float(last_close),
                quantiles=quantiles or None,
            )
        )
    return FuturesResponse(points=points)


@router.post("/futures/update", response_model=FuturesUpdateResponse, dependencies=Authorized)
def futures_update(context: Context, pair: PairDep) -> FuturesUpdateResponse:
    """Scores the ledger and records the champion's forecast for the next candle now."""
    engine = context.services.engine
    with engine.connect() as connection:
        if (
            candle_reads.last_open_time(connection, symbol=pair.symbol, interval=pair.interval)
            is None
        ):
            raise NoData(f"no {pair.symbol} {pair.interval} candles stored; backfill first")
        if registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval) is None:
            raise NoModel(f"no {pair.symbol} {pair.interval} model yet; POST /api/train first")
    refreshed = context.operations.forecast(pair)
    return FuturesUpdateResponse(
        updated=refreshed.scored + refreshed.recorded,
        scored=refreshed.scored,
        recorded=refreshed.recorded,
        materialized=refreshed.materialized,
    )
