"""GET /api/horizons: forecasts 3 and 12 candles ahead over the last N days, with their scores
beside the baselines; and the shaping of the newest ones that /api/forecast serves."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from candlecast.api.context import Context, PairDep, ResponseCache
from candlecast.api.schemas_horizons import HorizonsResponse
from candlecast.api.shaping import MAX_WINDOW_DAYS, clean, iso
from candlecast.bootstrap import Services
from candlecast.jobs.common import DAY_MS
from candlecast.jobs.horizon_metrics import summarize
from candlecast.store import horizons

_BASELINES = ("persistence_range", "random_walk_range", "har_range")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def horizon_out(row: dict[str, Any], *, newest: int | None) -> dict[str, Any]:
    """A stored horizon forecast as /api/forecast's `horizons` shows it."""
    close = row["close_quantiles"] or {}
    return {
        "horizon": int(row["horizon"]),
        "model_id": int(row["model_id"]),
        "origin_time": iso(row["origin_open_time"]),
        "origin_time_ms": int(row["origin_open_time"]),
        "end_time": iso(row["end_open_time"]),
        "end_time_ms": int(row["end_open_time"]),
        "made_at": iso(row["made_at"]),
        "last_close": float(row["last_close"]),
        "close": _number(close.get("q500")),
        "close_lo": _number(close.get("q050")),
        "close_hi": _number(close.get("q950")),
        "close_quantiles": close,
        "range": float(row["range"]),
        "range_quantiles": row["range_quantiles"] or {},
        "baselines": {name: _number(row[name]) for name in _BASELINES},
        "current": newest is not None and int(row["origin_open_time"]) == newest,
    }


def _points(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    def quantile(row: dict[str, Any], key: str) -> float | None:
        return _number((row["close_quantiles"] or {}).get(key))

    return {
        "origin_time": [int(r["origin_open_time"]) for r in rows],
        "end_time": [int(r["end_open_time"]) for r in rows],
        "model_id": [int(r["model_id"]) for r in rows],
        "last_close": [float(r["last_close"]) for r in rows],
        "close": [quantile(r, "q500") for r in rows],
        "close_lo": [quantile(r, "q050") for r in rows],
        "close_hi": [quantile(r, "q950") for r in rows],
        "range": [float(r["range"]) for r in rows],
        **{name: [_number(r[name]) for r in rows] for name in _BASELINES},
        "real_close": [_number(r["real_close"]) for r in rows],
        "real_range": [_number(r["real_range"]) for r in rows],
    }


def horizons_window(services: Services, *, symbol: str, interval: str, days: int) -> dict[str, Any]:
    """Each horizon's forecasts ending in the last `days` days (up to the newest forecast's
    end), with their scores."""
    body: dict[str, Any] = {
        "symbol": symbol,
        "interval": interval,
        "days": days,
        "start": None,
        "end": None,
        "horizons": [],
    }
    with services.engine.connect() as connection:
        end = horizons.newest_end(connection, symbol=symbol, interval=interval)
        if end is None:
            return body
        start = end - days * DAY_MS + 1
        rows = horizons.window(connection, symbol=symbol, interval=interval, start=start, end=end)
    by_horizon: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_horizon[int(row["horizon"])].append(row)
    for horizon, group in sorted(by_horizon.items()):
        scores = summarize(group)
        body["horizons"].append(
            {
                "horizon": horizon,
                "forecasts": scores["forecasts"],
                "scored": scores["scored"],
                "metrics": {"range": scores["range"], "close": scores["close"]},
                "points": _points(group),
            }
        )
    body.update(start=iso(start), end=iso(end))
    return clean(body)  # type: ignore[no-any-return]


def build_router() -> APIRouter:
    """The /api/horizons route with its own cache: encoded answers per (pair, runtime version,
    10 s slot, days)."""
    router = APIRouter(prefix="/api", tags=["dashboard"])
    cache = ResponseCache(size=16)

    @router.get(
        "/horizons",
        response_model=HorizonsResponse,
        summary="Forecasts 3 and 12 candles ahead, scored against their baselines",
    )
    async def horizons_route(
        context: Context,
        pair: PairDep,
        days: Annotated[
            int, Query(ge=1, le=MAX_WINDOW_DAYS, description="Window length in days")
        ] = 7,
    ) -> Response:
        """Per horizon, the forecasts whose last candle opens in the last `days` days (ending
        at the newest one's), as columns of epoch-ms times and values (`real_close` and
        `real_range` null until all h candles are stored), and `metrics`: the range's MAE
        and skill against each baseline, the close's pinball loss and CRPS against
        persistence, and the coverage of the 50/80/90/95% central intervals."""
        slot = int(time.time() // 10)
        key = (pair.symbol, pair.interval, context.runtime.version, slot, days)
        body: bytes | None = cache.get(key)
        if body is None:
            data = await run_in_threadpool(
                horizons_window,
                context.services,
                symbol=pair.symbol,
                interval=pair.interval,
                days=days,
            )
            body = json.dumps(data, separators=(",", ":")).encode()
            cache.put(key, body)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})

    return router
