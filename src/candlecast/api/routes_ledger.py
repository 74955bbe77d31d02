"""GET /api/ledger: the prediction ledger over the last N days, compact, for the dashboard.

The scores come from `modeling.ledger_metrics`, the same function behind every prospective
figure, so the pages never compute a metric of their own that could disagree with it. The
points are parallel columns (about 60 bytes a forecast), with each forecast's interval,
prob_up and the last close it was made from (the persistence baseline). The database holds at
most one forecast per candle, so the points need no deduplication here.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from candlecast.api.context import Context, PairDep, ResponseCache
from candlecast.bootstrap import Services
from candlecast.domain import iso_utc
from candlecast.jobs.common import DAY_MS
from candlecast.jobs.modeling import score_forecasts
from candlecast.store import ledger

_POINT_COLUMNS = ("pred_close", "close_lo", "close_hi", "prob_up", "last_close", "real_close")
_FAN_COLUMNS = ("close_q100", "close_q250", "close_q750", "close_q900")
_SOURCES = {
    "pred_close": "close_next",
    "close_lo": "close_lo",
    "close_hi": "close_hi",
    "prob_up": "prob_up",
    "last_close": "last_close",
    "real_close": "real_close",
}


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _number(value: Any) -> float | None:
    """A ledger value as a float, or None when it is missing."""
    return None if value is None else float(value)


def ledger_window(
    services: Services, *, symbol: str, interval: str, days: int, with_points: bool
) -> dict[str, Any]:
    """The ledger's last `days` days (ending at the newest forecast): scores and points."""
    with services.engine.connect() as connection:
        newest = ledger.latest(connection, symbol=symbol, interval=interval)
        if newest is None:
            return {
                "days": days,
                "start": None,
                "end": None,
                "metrics": {"rows": 0},
                "points": None,
                "forecasts": 0,
            }
        end = int(newest["target_open_time"])
        start = end - days * DAY_MS + 1
        frame = ledger.frame(connection, symbol=symbol, interval=interval, start=start, end=end)
        # One read of the ledger serves both the scores and the points.
        metrics = score_forecasts(connection, symbol=symbol, interval=interval, forecasts=frame)
    body: dict[str, Any] = {
        "days": days,
        "start": iso_utc(start),
        "end": iso_utc(end),
        "forecasts": len(frame),
        "metrics": metrics,
        "points": None,
    }
    if with_points:
        points: dict[str, Any] = {
            "time": [int(t) for t in frame["target_open_time"].tolist()],
            "model_id": [int(m) for m in frame["model_id"].tolist()],
        }
        for name in _POINT_COLUMNS:
            # Unscored forecasts have no real_close yet; a window of only those is an object
            # column of None, which must come out as nulls, not fail.
            points[name] = [_number(v) for v in frame[_SOURCES[name]].tolist()]
        # The close's 10/25/75/90% quantiles draw the fan around close_lo/close_hi (5/95%);
        # absent for forecasts of models without quantiles.
        for name in _FAN_COLUMNS:
            if name in frame.columns:
                points[name] = [_number(v) for v in frame[name].tolist()]
        body["points"] = points
    return _clean(body)  # type: ignore[no-any-return]


def build_router() -> APIRouter:
    """The /api/ledger route with its own cache (one per app): encoded answers per (pair,
    runtime version, 10 s slot, window)."""
    router = APIRouter(prefix="/api", tags=["dashboard"])
    cache = ResponseCache(size=16)

    @router.get("/ledger", summary="Prospective scores and points of the ledger")
    async def ledger_route(
        context: Context,
        pair: PairDep,
        days: Annotated[int, Query(ge=1, le=90, description="Window length in days")] = 1,
        points: Annotated[bool, Query(description="Include the forecasts themselves")] = True,
    ) -> Response:
        """The ledger's last `days` days, ending at the newest forecast: `metrics` (as
        `candlecast evaluate` scores them, with the persistence and climatology baselines),
        and, with `points=true`, columns `time` (target open time, epoch ms), `pred_close`,
        `close_lo`, `close_hi`, `prob_up`, `last_close` (persistence), `real_close` (null until
        the candle closes) and `model_id`."""
        # A replica without a scheduler never bumps its version; 10 s bounds the staleness.
        slot = int(time.time() // 10)
        key = (pair.symbol, pair.interval, context.runtime.version, slot, days, points)
        body: bytes | None = cache.get(key)
        if body is None:
            data = await run_in_threadpool(
                ledger_window,
                context.services,
                symbol=pair.symbol,
                interval=pair.interval,
                days=days,
                with_points=points,
            )
            body = json.dumps(data, separators=(",", ":")).encode()
            cache.put(key, body)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-cache"})

    return router
