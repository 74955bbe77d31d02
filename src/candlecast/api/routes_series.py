"""GET /api/series: candles with the champion's materialized forecasts and their errors."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy import Connection

from candlecast.api import series as series_data
from candlecast.api.context import ApiContext, BadParameter, Context, PairDep, parse_time
from candlecast.api.schemas import SeriesColumnsResponse, SeriesResponse
from candlecast.api.shaping import MAX_WINDOW_DAYS, iso
from candlecast.domain import Pair, interval_ms
from candlecast.jobs.common import DAY_MS
from candlecast.jobs.modeling import NoData
from candlecast.store import candle_reads, predictions, registry

router = APIRouter(prefix="/api", tags=["legacy"])
# Windows at least this long are served from the in-memory trailing columns.
HELD_FROM_DAYS = 7
_COLUMNS_DOC = (
    'format=columns answers {"time":[epoch ms…],"open":[…],"high","low","close","volume",'
    '"open_next","high_next","low_next","close_next","amp_next","dir_next","prob_up",'
    '"prob_down","err_close_abs","err_close_signed","err_amp_abs","err_amp_signed", '
    "…same metadata}."
)


def resolve_window(
    *, start: int | None, end: int | None, newest: int, fallback_days: int, step: int
) -> tuple[int, int]:
    """The [first, last] open_time window; 422 naming the parameter when it is not allowed."""
    span = MAX_WINDOW_DAYS * DAY_MS
    if start is not None and end is not None and start > end:
        raise BadParameter("start", "start is after end")
    last = newest if end is None else end
    first = last - fallback_days * DAY_MS + step if start is None else start
    if start is not None and first > last:
        raise BadParameter("start", "start is after the newest stored candle")
    if last - first >= span:
        name = "end" if end is not None else "start"
        raise BadParameter(name, f"the window is longer than {MAX_WINDOW_DAYS} days")
    return first, last


@router.get(
    "/series",
    # Declared as either shape, so a format=columns answer matches the schema too.
    response_model=SeriesResponse | SeriesColumnsResponse,
    responses={200: {"description": "Points (default) or, with format=columns, " + _COLUMNS_DOC}},
)
def series(
    context: Context,
    pair: PairDep,
    start: Annotated[str | None, Query(description="ISO 8601 UTC; first open time")] = None,
    end: Annotated[str | None, Query(description="ISO 8601 UTC; default: newest candle")] = None,
    fallback_days: Annotated[
        int, Query(ge=1, le=MAX_WINDOW_DAYS, description="Window length when start is absent")
    ] = 7,
    output: Annotated[
        Literal["points", "columns"], Query(alias="format", description="points or columns")
    ] = "points",
    max_points: Annotated[
        int | None, Query(ge=10, le=100_000, description="Downsample to at most this many")
    ] = None,
) -> Response:
    """Real candles with the forecast made at each for the next, and that forecast's error."""
    first_given, last_given = parse_time("start", start), parse_time("end", end)
    step = interval_ms(pair.interval)
    engine = context.services.engine
    with engine.connect() as connection:
        newest = candle_reads.last_open_time(connection, symbol=pair.symbol, interval=pair.interval)
        if newest is None:
            raise NoData(f"no {pair.symbol} {pair.interval} candles stored; backfill first")
        first, last = resolve_window(
            start=first_given,
            end=last_given,
            newest=newest,
            fallback_days=fallback_days,
            step=step,
        )
        model_id = registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval)
        done = (
            None if model_id is None else predictions.last_open_time(connection, model_id=model_id)
        )
        # A repaired candle re-stamps fetched_at, so the last write catches repairs too.
        written = candle_reads.last_write(
            connection, symbol=pair.symbol, interval=pair.interval, start=first
        )
        # Everything the answer depends on is in the key, so a hit is always current.
        key = (pair, model_id, newest, done, written, first, last, output, max_points)
        cached = context.series_cache.get(key)
        if cached is None:
            cached = _build(
                context,
                connection,
                pair,
                window=(first, last),
                newest=newest,
                model_id=model_id,
                output=output,
                max_points=max_points,
            )
            context.series_cache.put(key, cached)
    return Response(cached, media_type="application/json")


def _build(
    context: ApiContext,
    connection: Connection,
    pair: Pair,
    *,
    window: tuple[int, int],
    newest: int,
    model_id: int | None,
    output: str,
    max_points: int | None,
) -> bytes:
    """Loads, optionally downsamples and encodes one series answer."""
    first, last = window
    # The candle after `last` too: the last row's error needs it. Short windows are cheaper
    # to read directly than to bring the held 90 days up to date.
    through = last + interval_ms(pair.interval)
    if last - first < HELD_FROM_DAYS * DAY_MS:
        raw = series_data.read_raw(
            connection,
            symbol=pair.symbol,
            interval=pair.interval,
            start=first,
            end=through,
            model_id=model_id,
        )
    else:
        raw = context.columns.window(
            connection,
            symbol=pair.symbol,
            interval=pair.interval,
            model_id=model_id,
            newest=newest,
            start=first,
            end=through,
        )
    data = series_data.assemble(raw, interval=pair.interval, end=last)
    if max_points is not None:
        data = series_data.downsample(data, interval=pair.interval, max_points=max_points)
    meta = {
        "symbol": pair.symbol,
        "interval": pair.interval,
        "model_id": model_id,
        "start": iso(first),
        "end": iso(last),
        "count": len(data.times),
        "bucket_ms": data.bucket_ms,
    }
    if output == "columns":
        return series_data.encode_columns(data, meta)
    return series_data.encode_points(data, meta)
