"""/api/pairs: the followed pairs at a glance; follow a new pair, or stop following one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from candlecast.api.auth import Authorized
from candlecast.api.context import ApiContext, BadParameter, Context, parse_pair
from candlecast.api.errors import ErrorResponse
from candlecast.api.pairs_view import entry_json
from candlecast.api.schemas_pairs import PairIn, PairOut, PairsResponse
from candlecast.domain import ConfigError, Pair, PairNotTracked

router = APIRouter(prefix="/api", tags=["pairs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The pair is already followed"},
    422: {"model": ErrorResponse, "description": "Malformed, or not listed by the exchange"},
}


def _entries(context: ApiContext, only: Pair | None = None) -> list[dict[str, Any]]:
    followed = context.operations.followed_entries()
    if only is not None:
        followed = [entry for entry in followed if entry.pair == only]
    summaries = context.pair_summaries.get([entry.pair for entry in followed])
    now = context.clock()
    streamed = context.streamed_pairs([entry.pair for entry in followed])
    return [
        entry_json(
            entry,
            summaries[entry.pair],
            context.runtime,
            now_ms=now,
            streamed=entry.pair in streamed,
        )
        for entry in followed
    ]


@router.get("/pairs", response_model=PairsResponse)
def pairs(context: Context) -> dict[str, Any]:
    """Every followed pair: price, 24 h change and closes, the next forecast with its 90%
    interval and P(up), the last week's skill, and whether it is live."""
    return {"pairs": _entries(context)}


def _pair_of(context: ApiContext, symbol: str, interval: str) -> Pair:
    try:
        return Pair.of(symbol, interval)
    except ConfigError as exc:
        name = "interval" if "interval" in str(exc) else "symbol"
        raise BadParameter(name, str(exc)) from None


@router.post(
    "/pairs",
    response_model=PairOut,
    status_code=201,
    responses=_ERRORS,
    dependencies=Authorized,
)
async def follow(context: Context, body: PairIn) -> dict[str, Any]:
    """Follows a pair the exchange lists; its backfill, first model and forecast start in the
    background. 409 if it is followed already, 422 if the exchange does not list it."""
    pair = _pair_of(context, body.symbol, body.interval)
    await run_in_threadpool(context.operations.follow, pair)
    return (await run_in_threadpool(_entries, context, pair))[0]


@router.delete(
    "/pairs/{symbol}/{interval}",
    status_code=204,
    responses={404: {"model": ErrorResponse, "description": "The pair is not followed"}},
    dependencies=Authorized,
)
async def unfollow(
    context: Context,
    symbol: Annotated[str, Path(description="e.g. ETHUSDT", max_length=40)],
    interval: Annotated[str, Path(description="e.g. 5m", max_length=8)],
    purge: Annotated[
        bool, Query(description="Also delete its candles, models and forecasts")
    ] = False,
) -> Response:
    """Stops following a pair: all its work stops, and its routes answer 404. Its data stays
    unless `purge=true`."""
    pair = parse_pair(context, symbol, interval)
    if not context.is_tracked(pair):
        raise PairNotTracked(f"{pair} is not followed")
    await run_in_threadpool(context.operations.unfollow, pair, purge=purge)
    return Response(status_code=204)
