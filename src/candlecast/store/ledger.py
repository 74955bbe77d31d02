"""The prediction ledger: forecasts written once, before their candle exists, then scored.

A forecast row's predicted columns are never updated. Scoring only fills the realized columns,
once, after the target candle has closed and been stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Float, and_, cast, func, select, update

from candlecast.store.tables import candles, forecasts

if TYPE_CHECKING:
    import pandas as pd

PREDICTED = ("pred_open", "pred_high", "pred_low", "pred_close", "pred_range")
REALIZED = ("real_open", "real_high", "real_low", "real_close")


@dataclass(frozen=True)
class Forecast:
    """What the ledger records for one (model, target candle)."""

    model_id: int
    symbol: str
    interval: str
    made_at: int
    made_at_exchange: int | None
    asof_open_time: int
    target_open_time: int
    asof_close: Decimal
    pred_open: Decimal
    pred_high: Decimal
    pred_low: Decimal
    pred_close: Decimal
    pred_range: Decimal
    close_lo: Decimal
    close_hi: Decimal
    interval_level: Decimal
    prob_up: Decimal
    baselines: dict[str, float]
    quantiles: dict[str, float] | None = None


def record(connection: Connection, *, forecast: Forecast, close_time: int) -> bool:
    """Writes a forecast unless its candle already exists, has closed, or is already forecast.

    One forecast per target candle and pair (so per (model, target) too): the champion at the
    time the previous candle closed makes it. Returns False when refused; a forecast made with
    hindsight, or a second one, is never stored.
    """
    if forecast.made_at_exchange is not None and forecast.made_at_exchange > close_time:
        return False
    target_exists = connection.execute(
        select(func.count())
        .select_from(candles)
        .where(
            candles.c.symbol == forecast.symbol,
            candles.c.interval == forecast.interval,
            candles.c.open_time == forecast.target_open_time,
        )
    ).scalar_one()
    if target_exists:
        return False
    # The dialect's own insert, imported for the backend in use only (a CLI start-up cost).
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql as dialect
    else:
        from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
    # The unique keys decide "already forecast", so two racing writers cannot both record:
    # the second waits for the first's commit, then skips. No conflict target: a clash on
    # either key, (pair, target) or (model, target), means a forecast is there already.
    statement = (
        dialect.insert(forecasts)
        .values(**forecast.__dict__)
        .on_conflict_do_nothing()
        .returning(forecasts.c.id)
    )
    # RETURNING, not rowcount: drivers disagree on rowcount when a conflict skipped the row.
    return connection.execute(statement).first() is not None


def score(connection: Connection, *, symbol: str, interval: str, scored_at: int) -> int:
    """Fills realized values for forecasts whose target candle is now stored; returns how many."""
    pending = connection.execute(
        select(
            forecasts.c.id,
            candles.c.open,
            candles.c.high,
            candles.c.low,
            candles.c.close,
        )
        .join(
            candles,
            and_(
                candles.c.symbol == forecasts.c.symbol,
                candles.c.interval == forecasts.c.interval,
                candles.c.open_time == forecasts.c.target_open_time,
            ),
        )
        .where(
            forecasts.c.symbol == symbol,
            forecasts.c.interval == interval,
            forecasts.c.scored_at.is_(None),
        )
    ).all()
    for forecast_id, real_open, real_high, real_low, real_close in pending:
        connection.execute(
            update(forecasts)
            .where(forecasts.c.id == forecast_id, forecasts.c.scored_at.is_(None))
            .values(
                real_open=real_open,
                real_high=real_high,
                real_low=real_low,
                real_close=real_close,
                scored_at=scored_at,
            )
        )
    return len(pending)


def latest(
    connection: Connection, *, symbol: str, interval: str, model_id: int | None = None
) -> dict[str, Any] | None:
    """The newest forecast of a pair (optionally of one model), as a plain dict."""
    query = (
        select(forecasts)
        .where(forecasts.c.symbol == symbol, forecasts.c.interval == interval)
        .order_by(forecasts.c.target_open_time.desc(), forecasts.c.id.desc())
        .limit(1)
    )
    if model_id is not None:
        query = query.where(forecasts.c.model_id == model_id)
    row = connection.execute(query).first()
    return None if row is None else dict(row._mapping)


def frame(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
    model_id: int | None = None,
) -> pd.DataFrame:
    """Forecasts with target_open_time in [start, end] as floats, ascending by target time.

    Columns follow the model bundle's prediction names (open_next, ..., base_*), so the ml
    layer's prospective metrics read them directly; real_* are NaN until scored.
    """
    # Imported here: scoring during a sync needs no pandas, and a backfill should not load it.
    import pandas as pd

    names = {
        "pred_open": "open_next",
        "pred_high": "high_next",
        "pred_low": "low_next",
        "pred_close": "close_next",
        "pred_range": "range_next",
        "close_lo": "close_lo",
        "close_hi": "close_hi",
        "prob_up": "prob_up",
        "asof_close": "last_close",
        **{name: name for name in REALIZED},
    }
    columns = [
        forecasts.c.id,
        forecasts.c.model_id,
        forecasts.c.made_at,
        forecasts.c.asof_open_time.label("open_time"),
        forecasts.c.target_open_time,
        forecasts.c.scored_at,
        forecasts.c.baselines,
        forecasts.c.quantiles,
        *(cast(forecasts.c[column], Float).label(label) for column, label in names.items()),
    ]
    query = (
        select(*columns)
        .where(forecasts.c.symbol == symbol, forecasts.c.interval == interval)
        .order_by(forecasts.c.target_open_time, forecasts.c.id)
    )
    if start is not None:
        query = query.where(forecasts.c.target_open_time >= start)
    if end is not None:
        query = query.where(forecasts.c.target_open_time <= end)
    if model_id is not None:
        query = query.where(forecasts.c.model_id == model_id)
    rows = connection.execute(query).all()
    result = pd.DataFrame([dict(row._mapping) for row in rows])
    if result.empty:
        return pd.DataFrame(columns=[c.name for c in columns])
    baselines = pd.DataFrame(list(result.pop("baselines")), index=result.index)
    quantiles = pd.DataFrame([q or {} for q in result.pop("quantiles")], index=result.index)
    return pd.concat([result, baselines.astype(float), quantiles.astype(float)], axis=1)
