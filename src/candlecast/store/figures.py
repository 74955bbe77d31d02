"""Aggregate figures for monitoring (/metrics): a handful of GROUP BY reads, one per table.

Each function returns plain tuples for every stored pair at once, so a scrape costs the same
few queries whether one pair or ten are followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Float, Integer, and_, case, cast, func, select

from candlecast.domain import interval_ms
from candlecast.store.tables import candles, forecasts, job_runs, known_gaps

FINISHED = ("ok", "failed", "skipped")


@dataclass(frozen=True)
class PairCandles:
    """What is stored for one pair: how many candles, and the first and newest open_time."""

    symbol: str
    interval: str
    stored: int
    first_open_time: int
    last_open_time: int


@dataclass(frozen=True)
class JobRunFigures:
    """Finished runs of one job with one status: count, total seconds, cumulative buckets."""

    job: str
    status: str
    runs: int
    seconds: float
    # (upper bound in seconds, runs that took at most that long), ascending.
    buckets: tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class PairForecasts:
    """The ledger of one pair: forecasts recorded and scored, and the rolling MAE of the close
    over the newest `window_ms` of scored targets, the model's beside persistence's."""

    symbol: str
    interval: str
    recorded: int
    scored: int
    window_scored: int
    model_mae: float | None
    persistence_mae: float | None


def pair_candles(connection: Connection) -> list[PairCandles]:
    """Count, first and newest open_time of every stored pair."""
    query = select(
        candles.c.symbol,
        candles.c.interval,
        func.count(),
        func.min(candles.c.open_time),
        func.max(candles.c.open_time),
    ).group_by(candles.c.symbol, candles.c.interval)
    return [
        PairCandles(str(symbol), str(interval), int(count), int(first), int(last))
        for symbol, interval, count, first, last in connection.execute(query)
    ]


def repaired_candles(connection: Connection) -> dict[tuple[str, str], int]:
    """Candles repaired per pair, summed over every job run that reported repairs."""
    repaired = cast(job_runs.c.details["repaired"].as_string(), Integer)
    query = (
        select(job_runs.c.symbol, job_runs.c.interval, func.coalesce(func.sum(repaired), 0))
        .where(job_runs.c.symbol.is_not(None), job_runs.c.interval.is_not(None))
        .group_by(job_runs.c.symbol, job_runs.c.interval)
    )
    return {
        (str(symbol), str(interval)): int(total)
        for symbol, interval, total in connection.execute(query)
    }


def unfillable_candles(connection: Connection) -> dict[tuple[str, str], int]:
    """Candles the exchange itself does not have, per pair: the known gaps' open_time spans."""
    query = select(
        known_gaps.c.symbol,
        known_gaps.c.interval,
        known_gaps.c.first_open_time,
        known_gaps.c.last_open_time,
    )
    totals: dict[tuple[str, str], int] = {}
    for symbol, interval, first, last in connection.execute(query):
        key = (str(symbol), str(interval))
        totals[key] = totals.get(key, 0) + (int(last) - int(first)) // interval_ms(interval) + 1
    return totals


def job_runs_by_status(connection: Connection, *, bounds: Sequence[float]) -> list[JobRunFigures]:
    """Finished job runs by job and status, with their durations bucketed at `bounds` seconds."""
    duration_ms = job_runs.c.finished_at - job_runs.c.started_at
    bucket_columns = [
        func.sum(case((duration_ms <= int(bound * 1000), 1), else_=0)) for bound in bounds
    ]
    query = (
        select(
            job_runs.c.name,
            job_runs.c.status,
            func.count(),
            func.coalesce(func.sum(duration_ms), 0),
            *bucket_columns,
        )
        .where(job_runs.c.status.in_(FINISHED), job_runs.c.finished_at.is_not(None))
        .group_by(job_runs.c.name, job_runs.c.status)
    )
    found: list[JobRunFigures] = []
    for name, status, count, total_ms, *counts in connection.execute(query):
        buckets = tuple((float(b), int(c or 0)) for b, c in zip(bounds, counts, strict=True))
        found.append(
            JobRunFigures(str(name), str(status), int(count), int(total_ms) / 1000, buckets)
        )
    return found


def running_jobs(connection: Connection) -> dict[str, int]:
    """Job runs still marked running, per job."""
    query = (
        select(job_runs.c.name, func.count())
        .where(job_runs.c.status == "running")
        .group_by(job_runs.c.name)
    )
    return {str(name): int(count) for name, count in connection.execute(query)}


def pair_forecasts(connection: Connection, *, window_ms: int) -> list[PairForecasts]:
    """Per pair: forecasts recorded and scored, and the close's MAE over the newest window."""
    totals = (
        select(
            forecasts.c.symbol,
            forecasts.c.interval,
            func.count().label("recorded"),
            func.count(forecasts.c.scored_at).label("scored"),
            func.max(
                case((forecasts.c.scored_at.is_not(None), forecasts.c.target_open_time))
            ).label("newest"),
        )
        .group_by(forecasts.c.symbol, forecasts.c.interval)
        .subquery()
    )
    real = cast(forecasts.c.real_close, Float)
    model_error = func.avg(func.abs(cast(forecasts.c.pred_close, Float) - real))
    # Persistence forecasts the next close as the last close the forecast was made from.
    persistence_error = func.avg(func.abs(cast(forecasts.c.asof_close, Float) - real))
    window = (
        select(
            forecasts.c.symbol,
            forecasts.c.interval,
            func.count(),
            model_error,
            persistence_error,
        )
        .join(
            totals,
            and_(totals.c.symbol == forecasts.c.symbol, totals.c.interval == forecasts.c.interval),
        )
        .where(
            forecasts.c.scored_at.is_not(None),
            forecasts.c.target_open_time > totals.c.newest - window_ms,
        )
        .group_by(forecasts.c.symbol, forecasts.c.interval)
    )
    errors = {
        (str(symbol), str(interval)): (int(count), model, persistence)
        for symbol, interval, count, model, persistence in connection.execute(window)
    }
    found: list[PairForecasts] = []
    for symbol, interval, recorded, scored, _newest in connection.execute(select(totals)):
        count, model, persistence = errors.get((str(symbol), str(interval)), (0, None, None))
        found.append(
            PairForecasts(
                str(symbol),
                str(interval),
                int(recorded),
                int(scored),
                count,
                None if model is None else float(model),
                None if persistence is None else float(persistence),
            )
        )
    return found
