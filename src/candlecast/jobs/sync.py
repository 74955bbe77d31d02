"""Candle jobs over the store and the exchange: backfill, ingest and reconcile (importing a
file is jobs.imports', re-exported here).

Each job is recorded in job_runs with structured details. Candle windows are computed from the
exchange's clock (GET /api/v3/time), never the local one, so a skewed local clock or a
replaying exchange gives the same result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine

from candlecast.domain import Candle, interval_ms, iso_utc
from candlecast.jobs.common import DAY_MS, now_ms, recorded_run
from candlecast.store import candle_reads, candle_rows, gaps
from candlecast.store import candles as candle_store
from candlecast.store import gaps as gap_store
from candlecast.store.candles import WriteResult
from candlecast.store.db import write_transaction
from candlecast.store.gaps import Gap

log = logging.getLogger(__name__)

# Candles per write transaction: big enough that commits (an fsync each) stay rare.
WRITE_BATCH = 10_000
ProgressCallback = Callable[[int], None]


class KlineSource(Protocol):
    """What the jobs need from the exchange (exchange.rest.BinanceRest provides it)."""

    def server_time(self) -> int: ...

    def closed_kline_pages(
        self,
        symbol: str,
        interval: str,
        *,
        start_ms: int,
        end_ms: int | None = None,
        server_time_ms: int | None = None,
    ) -> Iterator[list[Candle]]: ...


@dataclass
class SyncReport:
    """What a backfill, ingest or reconcile did."""

    window_first: int
    window_last: int
    server_time: int
    requested_ranges: int = 0
    fetched: int = 0
    written: WriteResult = field(default_factory=WriteResult)
    unfillable: list[Gap] = field(default_factory=list)
    calls: int = 0

    def details(self) -> dict[str, Any]:
        """The job-run details: plain JSON, no prose to parse."""
        return {
            "window_first": iso_utc(self.window_first),
            "window_last": iso_utc(self.window_last),
            "server_time": iso_utc(self.server_time),
            "ranges": self.requested_ranges,
            "calls": self.calls,
            "fetched": self.fetched,
            "inserted": self.written.inserted,
            "repaired": self.written.repaired,
            "enriched": self.written.enriched,
            "unchanged": self.written.unchanged,
            "repaired_sample": self.written.repaired_sample,
            "unfillable_gaps": [
                {
                    "first": iso_utc(g.first_open_time),
                    "last": iso_utc(g.last_open_time),
                    "missing": g.missing,
                }
                for g in self.unfillable
            ],
        }


def closed_window(server_time: int, interval: str, days: int) -> tuple[int, int]:
    """(first, last) open_time of the closed candles in the last `days` days of server time."""
    step = interval_ms(interval)
    last = (server_time - step) // step * step
    earliest = server_time - days * DAY_MS
    first = -(-earliest // step) * step
    return first, last


def _calls(source: KlineSource) -> int:
    stats = getattr(source, "stats", None)
    return int(getattr(stats, "calls", 0))


def _fetch_ranges(
    engine: Engine,
    source: KlineSource,
    *,
    symbol: str,
    interval: str,
    ranges: list[tuple[int, int]],
    report: SyncReport,
    on_progress: ProgressCallback | None,
) -> None:
    """Fetches each range, writes it atomically per page batch, and records unfillable holes."""
    step = interval_ms(interval)
    for first, last in ranges:
        received: list[int] = []
        pending: list[Candle] = []
        pages = source.closed_kline_pages(
            symbol, interval, start_ms=first, end_ms=last, server_time_ms=report.server_time
        )
        for page in pages:
            pending.extend(page)
            received.extend(candle.open_time for candle in page)
            if len(pending) >= WRITE_BATCH:
                _write_batch(engine, symbol=symbol, interval=interval, batch=pending, report=report)
                pending = []
            if on_progress is not None and page:
                on_progress(len(page))
        _write_batch(engine, symbol=symbol, interval=interval, batch=pending, report=report)
        holes = _confirm_holes(
            engine,
            source,
            symbol=symbol,
            interval=interval,
            holes=_holes(first, last, received, step),
            report=report,
        )
        if holes:
            with write_transaction(engine) as connection:
                for hole in holes:
                    gap_store.record_unfillable(
                        connection,
                        symbol=symbol,
                        interval=interval,
                        gap=hole,
                        checked_at=report.server_time,
                    )
            report.unfillable.extend(holes)


def _confirm_holes(
    engine: Engine,
    source: KlineSource,
    *,
    symbol: str,
    interval: str,
    holes: list[Gap],
    report: SyncReport,
) -> list[Gap]:
    """Asks once more for each hole: an empty page can be a passing glitch, and a hole recorded
    as unfillable is skipped by backfill and ingest until the next reconcile."""
    step = interval_ms(interval)
    confirmed: list[Gap] = []
    for hole in holes:
        found: list[Candle] = []
        for page in source.closed_kline_pages(
            symbol,
            interval,
            start_ms=hole.first_open_time,
            end_ms=hole.last_open_time,
            server_time_ms=report.server_time,
        ):
            found.extend(page)
        _write_batch(engine, symbol=symbol, interval=interval, batch=found, report=report)
        received = [candle.open_time for candle in found]
        confirmed.extend(_holes(hole.first_open_time, hole.last_open_time, received, step))
    return confirmed


def _write_batch(
    engine: Engine, *, symbol: str, interval: str, batch: list[Candle], report: SyncReport
) -> None:
    """Writes fetched candles in one transaction; each batch lands whole or not at all."""
    if not batch:
        return
    with write_transaction(engine) as connection:
        written = candle_store.upsert_candles(
            connection,
            symbol=symbol,
            interval=interval,
            rows=candle_rows.rows_from_candles(batch),
            source="rest",
            fetched_at=now_ms(),
        )
    report.written.add(written)
    report.fetched += len(batch)


def _holes(first: int, last: int, received: list[int], step: int) -> list[Gap]:
    """Sub-ranges of [first, last] the exchange returned no candle for."""
    holes: list[Gap] = []
    expected = first
    for open_time in sorted(received):
        if open_time > expected:
            holes.append(Gap(expected, open_time - step, (open_time - expected) // step))
        expected = max(expected, open_time + step)
    if expected <= last:
        holes.append(Gap(expected, last, (last - expected) // step + 1))
    return holes


def _subtract_known(
    ranges: list[tuple[int, int]], known: list[Gap], step: int
) -> list[tuple[int, int]]:
    """Removes known unfillable gaps from the ranges still to fetch."""
    remaining = ranges
    for gap in known:
        next_ranges: list[tuple[int, int]] = []
        for first, last in remaining:
            if gap.last_open_time < first or gap.first_open_time > last:
                next_ranges.append((first, last))
                continue
            if first < gap.first_open_time:
                next_ranges.append((first, gap.first_open_time - step))
            if gap.last_open_time < last:
                next_ranges.append((gap.last_open_time + step, last))
        remaining = next_ranges
    return remaining


def sync_missing(
    engine: Engine,
    source: KlineSource,
    *,
    symbol: str,
    interval: str,
    days: int,
    extend_to_last_stored: bool,
    on_progress: ProgressCallback | None = None,
) -> SyncReport:
    """Fetches only what is missing in the window (and, for ingest, since the last candle)."""
    calls_before = _calls(source)
    server_time = source.server_time()
    first, last = closed_window(server_time, interval, days)
    step = interval_ms(interval)
    with engine.connect() as connection:
        if extend_to_last_stored:
            newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
            if newest is not None and newest + step < first:
                first = newest + step
        ranges = gaps.missing_ranges(
            connection, symbol=symbol, interval=interval, first=first, last=last
        )
        known = gap_store.list_unfillable(
            connection, symbol=symbol, interval=interval, start=first, end=last
        )
    ranges = _subtract_known(ranges, known, step)
    report = SyncReport(window_first=first, window_last=last, server_time=server_time)
    report.requested_ranges = len(ranges)
    _fetch_ranges(
        engine,
        source,
        symbol=symbol,
        interval=interval,
        ranges=ranges,
        report=report,
        on_progress=on_progress,
    )
    report.calls = _calls(source) - calls_before
    return report


def backfill(
    engine: Engine,
    source: KlineSource,
    *,
    symbol: str,
    interval: str,
    days: int,
    on_progress: ProgressCallback | None = None,
) -> SyncReport:
    """Fills the last `days` days of closed candles, fetching only what is missing."""
    return _recorded_sync(
        engine,
        source,
        name="backfill",
        symbol=symbol,
        interval=interval,
        days=days,
        on_progress=on_progress,
    )


def ingest(
    engine: Engine,
    source: KlineSource,
    *,
    symbol: str,
    interval: str,
    days: int,
    on_progress: ProgressCallback | None = None,
) -> SyncReport:
    """Fetches everything since the last stored candle and repairs gaps inside the window.

    The ledger is scored by the refresh that follows (usecases.PairOperations.ingest), once."""
    return _recorded_sync(
        engine,
        source,
        name="ingest",
        symbol=symbol,
        interval=interval,
        days=days,
        on_progress=on_progress,
    )


def _recorded_sync(
    engine: Engine,
    source: KlineSource,
    *,
    name: str,
    symbol: str,
    interval: str,
    days: int,
    on_progress: ProgressCallback | None,
) -> SyncReport:
    ingesting = name == "ingest"
    with recorded_run(engine, name=name, symbol=symbol, interval=interval) as details:
        details["days"] = days
        report = sync_missing(
            engine,
            source,
            symbol=symbol,
            interval=interval,
            days=days,
            extend_to_last_stored=ingesting,
            on_progress=on_progress,
        )
        details.update(report.details())
    return report


def reconcile(
    engine: Engine,
    source: KlineSource,
    *,
    symbol: str,
    interval: str,
    days: int,
    on_progress: ProgressCallback | None = None,
) -> SyncReport:
    """Re-fetches the whole window and repairs every stored candle that differs or is missing."""
    with recorded_run(engine, name="reconcile", symbol=symbol, interval=interval) as details:
        calls_before = _calls(source)
        server_time = source.server_time()
        first, last = closed_window(server_time, interval, days)
        report = SyncReport(window_first=first, window_last=last, server_time=server_time)
        report.requested_ranges = 1
        with engine.connect() as connection:
            known = gap_store.list_unfillable(
                connection, symbol=symbol, interval=interval, start=first, end=last
            )
        _fetch_ranges(
            engine,
            source,
            symbol=symbol,
            interval=interval,
            ranges=[(first, last)],
            report=report,
            on_progress=on_progress,
        )
        still_missing = {gap.first_open_time for gap in report.unfillable}
        with write_transaction(engine) as connection:
            for gap in known:
                if gap.first_open_time not in still_missing:
                    gap_store.forget(
                        connection,
                        symbol=symbol,
                        interval=interval,
                        first_open_time=gap.first_open_time,
                    )
        report.calls = _calls(source) - calls_before
        details.update(report.details())
        details["checked"] = report.fetched
        details["missing_filled"] = report.written.inserted
    return report
