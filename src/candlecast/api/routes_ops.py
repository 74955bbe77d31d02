"""Operations: health (for load balancers and humans) and recent job runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from candlecast.api.context import ApiContext, Context, PairDep
from candlecast.api.errors import ErrorResponse
from candlecast.api.schemas import HealthResponse, JobOut, JobsResponse
from candlecast.api.shaping import clean, iso
from candlecast.domain import NotFound, Pair, PairNotTracked, interval_ms
from candlecast.store import candle_reads, registry, runs

router = APIRouter(prefix="/api", tags=["ops"])


def stale_after_seconds(context: ApiContext, pair: Pair) -> float:
    """How old the newest closed candle may be while healthy: 3 intervals + one ingest period."""
    settings = context.services.settings
    return 3 * interval_ms(pair.interval) / 1000 + settings.ingest_every_seconds


def _probe(context: ApiContext, pair: Pair) -> dict[str, Any]:
    try:
        with context.services.engine.connect() as connection:
            newest = candle_reads.last_open_time(
                connection, symbol=pair.symbol, interval=pair.interval
            )
            champion = registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval)
    except Exception:
        # Any failure to read is "database unreachable" here; health must never raise.
        return {"database": False, "newest": None, "champion": None}
    return {"database": True, "newest": newest, "champion": champion}


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={
        503: {"model": HealthResponse, "description": "Unhealthy (same body)"},
        404: {"model": ErrorResponse, "description": "A pair this service does not follow"},
    },
)
async def health(context: Context, pair: PairDep) -> Response:
    """200 when healthy, 503 otherwise; `problems` says why; 404 for a pair this service does
    not follow (not an outage). Ages are measured on the exchange's clock."""
    if not context.is_tracked(pair):
        raise PairNotTracked(f"{pair.symbol} {pair.interval} is not followed by this service")
    snapshot = context.runtime.snapshot()
    key = ("health", pair, snapshot["version"])
    probe = context.fast_cache.get(key)
    if probe is None:
        probe = await run_in_threadpool(_probe, context, pair)
        context.fast_cache.put(key, probe)
    stale_after = stale_after_seconds(context, pair)
    problems: list[str] = []
    age: float | None = None
    newest = probe["newest"]
    if not probe["database"]:
        problems.append("database unreachable")
    elif newest is None:
        problems.append("no candles stored")
    else:
        closed_at = newest + interval_ms(pair.interval)
        age = max(0.0, (context.clock() - closed_at) / 1000)
        if age > stale_after:
            problems.append(f"newest candle is {age:.0f} s old (limit {stale_after:.0f} s)")
    if snapshot["scheduler_enabled"] and not snapshot["scheduler_running"]:
        problems.append("scheduler enabled but not running")
    if snapshot["exchange_error"]:
        problems.append(f"exchange unreachable: {snapshot['exchange_error']}")
    failure = context.runtime.pairs.get(pair).error
    if failure and failure != snapshot["exchange_error"]:
        problems.append(f"{pair} failing: {failure}")
    body = {
        "status": "unhealthy" if problems else "healthy",
        "problems": problems,
        "database": probe["database"],
        "last_candle_time": iso(newest),
        "last_candle_age_seconds": age,
        "stale_after_seconds": stale_after,
        "champion_id": probe["champion"],
        "stream_enabled": snapshot["stream_enabled"],
        "stream_connected": snapshot["stream_connected"],
        "scheduler_enabled": snapshot["scheduler_enabled"],
        "scheduler_running": snapshot["scheduler_running"],
        "exchange_error": snapshot["exchange_error"],
        "connection": context.runtime.connection(),
        "exchange_time": iso(context.clock()),
        "exchange_clock_offset_ms": context.runtime.clock.offset_ms,
        "version": snapshot["version"],
    }
    return Response(
        json.dumps(body).encode(),
        status_code=503 if problems else 200,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _job_out(r: runs.JobRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "symbol": r.symbol,
        "interval": r.interval,
        "status": r.status,
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "duration_seconds": None
        if r.finished_at is None
        else (r.finished_at - r.started_at) / 1000,
        "details": clean(r.details),
        "host": r.host,
    }


@router.get("/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorResponse}})
def job(
    context: Context,
    # Run ids are 32-bit integer columns; a larger id is a 422, not PostgreSQL's out-of-range.
    job_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
) -> JobOut:
    """One job run: `running`, then `ok` with `details.result`, or `failed` with the error."""
    with context.services.engine.connect() as connection:
        found = runs.get_run(connection, run_id=job_id)
    if found is None:
        raise NotFound(f"no job run {job_id}")
    return JobOut.model_validate(_job_out(found))


@router.get("/jobs", response_model=JobsResponse)
def jobs(
    context: Context,
    pair: PairDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Newest first")] = 50,
    # A job name is a word; anything else (a NUL byte, which PostgreSQL refuses) is a 422.
    name: Annotated[
        str | None,
        Query(max_length=32, pattern=r"^[A-Za-z0-9_.:-]+$", description="e.g. ingest, train"),
    ] = None,
) -> JobsResponse:
    """Recent job runs of the pair (and pair-less ones) with details, and scheduled next runs."""
    with context.services.engine.connect() as connection:
        mine = runs.recent_runs(
            connection, limit=limit, name=name, pair=(pair.symbol, pair.interval)
        )
    snapshot = context.runtime.snapshot()
    # The schedule holds every pair's jobs: the page of one pair shows that pair's.
    upcoming = [run for run in snapshot["next_runs"] if run.get("pair") in (None, str(pair))]
    return JobsResponse.model_validate(
        {
            "runs": [_job_out(r) for r in mine[:limit]],
            "next_runs": clean(upcoming),
            "scheduler_enabled": snapshot["scheduler_enabled"],
            "scheduler_running": snapshot["scheduler_running"],
        }
    )
