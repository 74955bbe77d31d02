"""What follows every new closed candle: score the ledger and the horizon forecasts, forecast
the next candle (and the horizons), and materialize the champion's predictions. Idempotent
and cheap: it reads only recent rows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from candlecast.domain import interval_ms
from candlecast.jobs import modeling
from candlecast.jobs.common import DAY_MS, now_ms
from candlecast.jobs.model_cache import ModelCache
from candlecast.jobs.reference import read_history
from candlecast.ml.features import FEATURE_WINDOW
from candlecast.store import candle_reads, horizons, predictions, registry
from candlecast.store.db import write_transaction

log = logging.getLogger(__name__)

# A champion with no stored predictions (e.g. trained before they existed) gets at most this
# much history materialized at once, the longest window /api/series serves.
MAX_BACKFILL_DAYS = 90


def refresh_after_candles(
    engine: Engine,
    *,
    symbol: str,
    interval: str,
    exchange_clock: Callable[[], int] | None = None,
    models: ModelCache | None = None,
    materialize_now: bool = True,
) -> dict[str, Any]:
    """Scores the ledger, records the champion's next forecast, materializes new predictions
    (unless `materialize_now` is false: then the caller runs materialize_newest later).

    With `exchange_clock`, no forecast is recorded for a target candle that has already closed
    at the exchange (the store lagging behind must not let hindsight into the ledger).
    `models` (services.models) keeps the champion decoded from one candle to the next.
    """
    result: dict[str, Any] = {
        "scored": modeling.score_ledger(engine, symbol=symbol, interval=interval),
        "horizons_scored": score_horizons(engine, symbol=symbol, interval=interval),
        "recorded": 0,
        "materialized": 0,
        "champion_id": None,
    }
    with engine.connect() as connection:
        record = registry.champion(connection, symbol=symbol, interval=interval)
        newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
    if record is None or newest is None:
        return result
    result["champion_id"] = record.id
    try:
        recorded = modeling.forecast_next(
            engine, symbol=symbol, interval=interval, exchange_clock=exchange_clock, models=models
        )
    except (modeling.NoModel, modeling.NoData):
        # The champion changed or candles went meanwhile; the next refresh catches up.
        recorded = None
    result["recorded"] = int(recorded is not None)
    if materialize_now:
        result["materialized"] = materialize_newest(
            engine, symbol=symbol, interval=interval, models=models
        )
    return result


def score_horizons(engine: Engine, *, symbol: str, interval: str) -> int:
    """Fills realized values beside every horizon forecast whose candles are all stored now."""
    with write_transaction(engine) as connection:
        return horizons.score(connection, symbol=symbol, interval=interval, scored_at=now_ms())


def materialize_newest(
    engine: Engine, *, symbol: str, interval: str, models: ModelCache | None = None
) -> int:
    """Materializes the champion's predictions up to the newest stored candle."""
    with engine.connect() as connection:
        record = registry.champion(connection, symbol=symbol, interval=interval)
        newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
        done = (
            None if record is None else predictions.last_open_time(connection, model_id=record.id)
        )
    if record is None or newest is None:
        return 0
    return materialize(
        engine,
        model_id=record.id,
        symbol=symbol,
        interval=interval,
        newest=newest,
        done=done,
        models=models,
    )


def fill_unpredicted(
    engine: Engine,
    *,
    symbol: str,
    interval: str,
    newest: int | None = None,
    models: ModelCache | None = None,
) -> int:
    """Materializes the champion's predictions for candles in the served window that have none,
    such as gaps filled after the fact; returns how many were written."""
    with engine.connect() as connection:
        model_id = registry.champion_id(connection, symbol=symbol, interval=interval)
        if newest is None:
            newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
        if model_id is None or newest is None:
            return 0
        start = newest - MAX_BACKFILL_DAYS * DAY_MS + interval_ms(interval)
        missing = predictions.unpredicted(
            connection,
            model_id=model_id,
            symbol=symbol,
            interval=interval,
            start=start,
            end=newest,
        )
    if not missing:
        return 0
    bundle = modeling.load_bundle(engine, model_id, cache=models)
    step = interval_ms(interval)
    with engine.connect() as connection:
        history = read_history(
            connection,
            symbol=symbol,
            interval=interval,
            start=missing[0] - (FEATURE_WINDOW + 2) * step,
            end=missing[-1],
            reference=bundle.reference,
        )
    predicted = bundle.predict(history)
    fresh = predicted[predicted["open_time"].isin(missing)]
    with write_transaction(engine) as connection:
        return predictions.write(
            connection, model_id=model_id, symbol=symbol, interval=interval, frame=fresh
        )


def materialize(
    engine: Engine,
    *,
    model_id: int,
    symbol: str,
    interval: str,
    newest: int,
    done: int | None,
    models: ModelCache | None = None,
) -> int:
    """Stores the model's predictions for candles after `done` up to `newest`; returns rows."""
    step = interval_ms(interval)
    first = newest - MAX_BACKFILL_DAYS * DAY_MS + step
    if done is not None:
        first = max(first, done + step)
    if first > newest:
        return 0
    bundle = modeling.load_bundle(engine, model_id, cache=models)
    with engine.connect() as connection:
        # Only the feature window before the first new candle is read, not the whole history.
        history = read_history(
            connection,
            symbol=symbol,
            interval=interval,
            start=first - (FEATURE_WINDOW + 2) * step,
            end=newest,
            reference=bundle.reference,
        )
    if history.empty:
        return 0
    predicted = bundle.predict(history)
    fresh = predicted[predicted["open_time"] >= first]
    if fresh.empty:
        return 0
    with write_transaction(engine) as connection:
        written = predictions.write(
            connection, model_id=model_id, symbol=symbol, interval=interval, frame=fresh
        )
    log.debug("materialized %d prediction(s) of model %d", written, model_id)
    return written
