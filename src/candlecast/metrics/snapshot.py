"""The database figures /metrics shows, read in one connection, with job runs tallied so that
each read covers only the runs since the last settled one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine

from candlecast.store import figures
from candlecast.store.queue import QueueFigures, queue_figures

JOB_BUCKETS = (0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
MAE_WINDOW_MS = 86_400_000
# A job run is folded into the running totals once finished and started this long ago: a run
# is committed as it starts, so no run with a lower id can still appear after that.
SETTLE_MS = 120_000
K = TypeVar("K")


@dataclass(frozen=True)
class Figures:
    """Everything read from the database in one refresh."""

    read_at: float
    seconds: float
    candles: list[figures.PairCandles] = field(default_factory=list)
    repaired: dict[tuple[str, str], int] = field(default_factory=dict)
    unfillable: dict[tuple[str, str], int] = field(default_factory=dict)
    jobs: list[figures.JobRunFigures] = field(default_factory=list)
    running: dict[str, int] = field(default_factory=dict)
    forecasts: list[figures.PairForecasts] = field(default_factory=list)
    # The task queue's figures; None where there is no queue (SQLite).
    queue: QueueFigures | None = None


def _add_jobs(
    into: dict[tuple[str, str], figures.JobRunFigures], found: list[figures.JobRunFigures]
) -> dict[tuple[str, str], figures.JobRunFigures]:
    for figure in found:
        key = (figure.job, figure.status)
        old = into.get(key)
        if old is not None:
            buckets = tuple(
                (bound, a + b)
                for (bound, a), (_, b) in zip(old.buckets, figure.buckets, strict=True)
            )
            runs, seconds = old.runs + figure.runs, old.seconds + figure.seconds
            figure = figures.JobRunFigures(figure.job, figure.status, runs, seconds, buckets)
        into[key] = figure
    return into


def _add_counts(into: dict[K, int], found: dict[K, int]) -> dict[K, int]:
    for key, count in found.items():
        into[key] = into.get(key, 0) + count
    return into


@dataclass
class RunTally:
    """Job-run figures folded in for good up to a settled run id, so that a refresh reads only
    the runs after it instead of the whole (ever-growing) job_runs table."""

    upto: int = 0
    jobs: dict[tuple[str, str], figures.JobRunFigures] = field(default_factory=dict)
    repaired: dict[tuple[str, str], int] = field(default_factory=dict)


def read_figures(engine: Engine, tally: RunTally | None = None) -> Figures:
    """Reads every database figure /metrics shows, in one connection; `tally` (updated here)
    carries the job runs already counted by earlier reads."""
    tally = tally if tally is not None else RunTally()
    started = time.monotonic()
    young_from = time.time_ns() // 1_000_000 - SETTLE_MS
    with engine.connect() as connection:
        candles = figures.pair_candles(connection)
        settled = figures.settled_run_id(connection, after=tally.upto, young_from=young_from)
        if settled > tally.upto:
            span = {"after": tally.upto, "upto": settled}
            runs = figures.job_runs_by_status(connection, bounds=JOB_BUCKETS, **span)
            repairs = figures.repaired_candles(connection, **span)
            # Applied together, after both reads: a failed read folds in nothing.
            _add_jobs(tally.jobs, runs)
            _add_counts(tally.repaired, repairs)
            tally.upto = settled
        recent = figures.job_runs_by_status(connection, bounds=JOB_BUCKETS, after=tally.upto)
        jobs = list(_add_jobs(dict(tally.jobs), recent).values())
        recent_repairs = figures.repaired_candles(connection, after=tally.upto)
        repaired = _add_counts(dict(tally.repaired), recent_repairs)
        running = figures.running_jobs(connection, after=tally.upto)
        unfillable = figures.unfillable_candles(connection)
        ledger = figures.pair_forecasts(connection, window_ms=MAE_WINDOW_MS)
        tasks = queue_figures(connection, time.time_ns() // 1_000_000)
    finished = time.monotonic()
    return Figures(
        finished,
        finished - started,
        candles,
        repaired,
        unfillable,
        jobs,
        running,
        ledger,
        tasks if tasks.enabled else None,
    )
