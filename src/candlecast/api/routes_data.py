"""Read routes over the store: candles (JSON or CSV), the current forecast, the models."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from candlecast.api.context import ApiContext, BadParameter, Context, PairDep, parse_time
from candlecast.api.routes_horizons import horizon_out
from candlecast.api.schemas import CandleOut, CandlesResponse, ForecastResponse, ModelsResponse
from candlecast.api.shaping import baselines_of, clean, iso
from candlecast.domain import Pair, interval_ms
from candlecast.files_export import write_csv
from candlecast.store import candle_reads, horizons, ledger, registry

router = APIRouter(prefix="/api", tags=["data"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No model or forecast yet"}}


@router.get("/candles", response_model=CandlesResponse)
def candles(
    context: Context,
    pair: PairDep,
    start: Annotated[str | None, Query(description="ISO 8601 UTC, inclusive")] = None,
    end: Annotated[str | None, Query(description="ISO 8601 UTC, inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="At most this many")] = 1000,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Response | CandlesResponse:
    """Stored closed candles as exact decimal strings; the newest ones when start is absent."""
    first, last = parse_time("start", start), parse_time("end", end)
    if first is not None and last is not None and first > last:
        raise BadParameter("start", "start is after end")
    newest_first = first is None
    with context.services.engine.connect() as connection:
        rows = list(
            candle_reads.iter_rows(
                connection,
                symbol=pair.symbol,
                interval=pair.interval,
                start=first,
                end=last,
                limit=limit,
                descending=newest_first,
            )
        )
    if newest_first:
        rows.reverse()
    if output == "csv":
        buffer = io.StringIO()
        write_csv(rows, buffer)
        name = f"{pair.symbol}-{pair.interval}.csv"
        return Response(
            buffer.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return CandlesResponse(
        symbol=pair.symbol,
        interval=pair.interval,
        truncated=len(rows) == limit,
        candles=[_candle(row) for row in rows],
    )


def _candle(row: tuple[object, ...]) -> CandleOut:
    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return CandleOut(
        time=str(iso(int(str(row[0])))),
        open=str(row[1]),
        high=str(row[2]),
        low=str(row[3]),
        close=str(row[4]),
        volume=str(row[5]),
        close_time=str(iso(int(str(row[6])))),
        quote_volume=text(row[7]),
        trades=None if row[8] is None else int(str(row[8])),
        taker_buy_base=text(row[9]),
        taker_buy_quote=text(row[10]),
    )


def _forecast_body(context: ApiContext, pair: Pair) -> tuple[int, bytes]:
    """(status, JSON body) of /api/forecast; cached by the caller."""
    with context.services.engine.connect() as connection:
        model_id = registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval)
        if model_id is None:
            detail = f"no {pair.symbol} {pair.interval} model yet; POST /api/train first"
            return 404, json.dumps({"detail": detail}).encode()
        entry = ledger.latest(
            connection, symbol=pair.symbol, interval=pair.interval, model_id=model_id
        )
        newest = candle_reads.last_open_time(connection, symbol=pair.symbol, interval=pair.interval)
        ahead = horizons.latest(connection, symbol=pair.symbol, interval=pair.interval)
    if entry is None:
        detail = f"model {model_id} has no forecast yet; POST /api/futures/update"
        return 404, json.dumps({"detail": detail}).encode()
    prob_up = float(entry["prob_up"])
    step = interval_ms(pair.interval)
    body: dict[str, Any] = {
        "model_id": model_id,
        "symbol": pair.symbol,
        "interval": pair.interval,
        "asof_time": iso(entry["asof_open_time"]),
        "target_time": iso(entry["target_open_time"]),
        "made_at": iso(entry["made_at"]),
        "last_close": float(entry["asof_close"]),
        "open": float(entry["pred_open"]),
        "high": float(entry["pred_high"]),
        "low": float(entry["pred_low"]),
        "close": float(entry["pred_close"]),
        "range": float(entry["pred_range"]),
        "close_lo": float(entry["close_lo"]),
        "close_hi": float(entry["close_hi"]),
        "interval_level": float(entry["interval_level"]),
        "prob_up": prob_up,
        "prob_down": 1 - prob_up,
        "baselines": clean({k: float(v) for k, v in (entry["baselines"] or {}).items()}),
        "quantiles": entry.get("quantiles"),
        "current": newest is not None and int(entry["target_open_time"]) == newest + step,
        "horizons": clean([horizon_out(row, newest=newest) for row in ahead]),
    }
    return 200, json.dumps(body).encode()


@router.get("/forecast", response_model=ForecastResponse, responses=_NOT_FOUND)
async def forecast(context: Context, pair: PairDep) -> Response:
    """The champion's newest recorded forecast for the next candle; 404 before any model."""
    key = ("forecast", pair, context.runtime.version)
    hit = context.fast_cache.get(key)
    if hit is None:
        hit = await run_in_threadpool(_forecast_body, context, pair)
        context.fast_cache.put(key, hit)
    status, body = hit
    return Response(body, status_code=status, media_type="application/json")


@router.get("/models", response_model=ModelsResponse)
def models(
    context: Context,
    pair: PairDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Newest first")] = 50,
) -> ModelsResponse:
    """Registered models with their metrics, baselines and promotion decision."""
    with context.services.engine.connect() as connection:
        records = registry.list_models(
            connection, symbol=pair.symbol, interval=pair.interval, limit=limit
        )
        champion_id = registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval)
    return ModelsResponse.model_validate(
        {
            "champion_id": champion_id,
            "models": [
                {
                    "id": r.id,
                    "created_at": iso(r.created_at),
                    "status": r.status,
                    "algorithm": r.algorithm,
                    "train_start": iso(r.train_start),
                    "train_end": iso(r.train_end),
                    "params": clean(r.params),
                    "metrics": clean(r.metrics),
                    "baselines": baselines_of(r.metrics),
                    "decision": clean(r.decision),
                }
                for r in records
            ],
        }
    )
