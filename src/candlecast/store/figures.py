"""Aggregate figures for monitoring (/metrics): a handful of GROUP BY reads, one per table.

Each function returns plain tuples for every stored pair at once, so a scrape costs the same
few queries whether one pair or ten are followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    select,
)

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


def stored_pairs(connection: Connection) -> list[tuple[str, str]]:
    """Every stored (symbol, interval), found by skipping through the primary key's index: a
    few min() probes per pair, where SELECT DISTINCT would read every candle."""
    found: list[tuple[str, str]] = []
    symbol = connection.execute(select(func.min(candles.c.symbol))).scalar_one()
    while symbol is not None:
        interval = connection.execute(
            select(func.min(candles.c.interval)).where(candles.c.symbol == symbol)
        ).scalar_one()
        while interval is not None:
            found.append((str(symbol), str(interval)))
            interval = connection.execute(
                select(func.min(candles.c.interval)).where(
                    candles.c.symbol == symbol, candles.c.interval > interval
                )
            ).scalar_one()
        symbol = connection.execute(
            select(func.min(candles.c.symbol)).where(candles.c.symbol > symbol)
        ).scalar_one()
    return found


def pair_candles(connection: Connection) -> list[PairCandles]:
    """Count, first and newest open_time of every stored pair, each read through the index."""
    found: list[PairCandles] = []
    for symbol, interval in stored_pairs(connection):
        pair = [candles.c.symbol == symbol, candles.c.interval == interval]
        # Three scalar reads: a count alone is a B-tree count, and min() and max() are single
        # probes only when each stands alone (together with count they scan the range).
        query = select(
            select(func.count()).select_from(candles).where(*pair).scalar_subquery(),
            select(func.min(candles.c.open_time)).where(*pair).scalar_subquery(),
            select(func.max(candles.c.open_time)).where(*pair).scalar_subquery(),
        )
        count, first, last = connection.execute(query).one()
        if count:
            found.append(PairCandles(str(symbol), str(interval), int(count), int(first), int(last)))
    return found


def _id_range(after: int, upto: int | None) -> list[ColumnElement[bool]]:
    conditions = [job_runs.c.id > after]
    if upto is not None:
        conditions.append(job_runs.c.id <= upto)
    return conditions


def settled_run_id(connection: Connection, *, after: int, young_from: int) -> int:
    """The highest job-run id up to which every run (after `after`) has finished and started
    before `young_from` (epoch ms): what a tally can fold in for good. Runs only ever go from
    running to finished, and are committed as they start, so nothing changes below it."""
    unsettled = connection.execute(
        select(func.min(job_runs.c.id)).where(
            job_runs.c.id > after,
            (job_runs.c.status == "running") | (job_runs.c.started_at >= young_from),
        )
    ).scalar_one()
    if unsettled is not None:
        return int(unsettled) - 1
    newest = connection.execute(
        select(func.max(job_runs.c.id)).where(job_runs.c.id > after)
    ).scalar_one()
    return after if newest is None else int(newest)


def repaired_candles(
    connection: Connection, *, after: int = 0, upto: int | None = None
) -> dict[tuple[str, str], int]:
    """Candles repaired per pair, summed over the job runs with after < id <= upto."""
    repaired = cast(job_runs.c.details["repaired"].as_string(), Integer)
    query = (
        select(job_runs.c.symbol, job_runs.c.interval, func.coalesce(func.sum(repaired), 0))
        .where(
            job_runs.c.symbol.is_not(None),
            job_runs.c.interval.is_not(None),
            *_id_range(after, upto),
        )
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


def job_runs_by_status(
    connection: Connection, *, bounds: Sequence[float], after: int = 0, upto: int | None = None
) -> list[JobRunFigures]:
    """Finished job runs (after < id <= upto) by job and status, with their durations bucketed
    at `bounds` seconds."""
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
        .where(
            job_runs.c.status.in_(FINISHED),
            job_runs.c.finished_at.is_not(None),
            *_id_range(after, upto),
        )
        .group_by(job_runs.c.name, job_runs.c.status)
    )
    found: list[JobRunFigures] = []
    for name, status, count, total_ms, *counts in connection.execute(query):
        buckets = tuple((float(b), int(c or 0)) for b, c in zip(bounds, counts, strict=True))
        found.append(
            JobRunFigures(str(name), str(status), int(count), int(total_ms) / 1000, buckets)
        )
    return found


def running_jobs(connection: Connection, *, after: int = 0) -> dict[str, int]:
    """Job runs still marked running (with id > after), per job."""
    query = (
        select(job_runs.c.name, func.count())
        .where(job_runs.c.status == "running", job_runs.c.id > after)
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
