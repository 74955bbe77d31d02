"""The download job: Binance's public kline dumps into the store, verified and resumable.

Whole months come from monthly files; the current month, partial months and months whose
monthly file is missing come from daily files. Each file is checked against its published
sha256, imported in one transaction and recorded as a `download` job run; a later run skips
the days those records cover, so an interrupted download resumes without fetching again.
"""

from __future__ import annotations

import calendar
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from candlecast.domain import ConfigError, DataFileError, interval_ms
from candlecast.exchange.dumps_http import DumpClient, Fetched, daily_path, monthly_path
from candlecast.jobs.common import DAY_MS, now_ms, recorded_run
from candlecast.store import candles as candle_store
from candlecast.store import runs
from candlecast.store.candles import WriteResult
from candlecast.store.db import write_transaction

JOB_NAME = "download"
# Files fetched ahead of the one being imported: hides the network's latency.
_AHEAD = 4
_MONTH_RE = re.compile(r"^\d{4}-\d{2}$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class DumpFile:
    """One monthly or daily dump file of a pair."""

    symbol: str
    interval: str
    first_day: date
    last_day: date
    monthly: bool

    @property
    def period(self) -> str:
        """YYYY-MM for a monthly file, YYYY-MM-DD for a daily one."""
        return self.first_day.strftime("%Y-%m" if self.monthly else "%Y-%m-%d")

    @property
    def name(self) -> str:
        """The file name, e.g. BTCUSDT-5m-2025-09.zip."""
        return f"{self.symbol}-{self.interval}-{self.period}.zip"

    @property
    def url_path(self) -> str:
        """The path on the dumps server."""
        if self.monthly:
            return monthly_path(self.symbol, self.interval, self.period)
        return daily_path(self.symbol, self.interval, self.period)

    def days(self) -> list[date]:
        """Every day the file covers."""
        count = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=offset) for offset in range(count)]

    def daily_files(self) -> list[DumpFile]:
        """The daily files covering the same days."""
        return [DumpFile(self.symbol, self.interval, day, day, False) for day in self.days()]


@dataclass
class DownloadReport:
    """What one download of one pair did."""

    symbol: str
    interval: str
    first_day: date
    last_day: date
    imported: list[str] = field(default_factory=list)
    already: int = 0
    missing: list[tuple[date, date]] = field(default_factory=list)
    written: WriteResult = field(default_factory=WriteResult)


def parse_bound(flag: str, text: str, *, end: bool) -> date:
    """A month (2025-07) or a date (2025-07-14); a month as --end means its last day."""
    raw = text.strip()
    try:
        if _MONTH_RE.match(raw):
            year, month = (int(part) for part in raw.split("-"))
            if not end:
                return date(year, month, 1)
            return date(year, month, calendar.monthrange(year, month)[1])
        if _DAY_RE.match(raw):
            return date.fromisoformat(raw)
    except ValueError as exc:
        raise ConfigError(f"{flag} {text!r}: {exc}") from None
    raise ConfigError(f"{flag} takes a month (2025-07) or a date (2025-07-14), not {text!r}")


def yesterday_utc() -> date:
    """The last day whose daily dump can exist: days are published once they are over."""
    return datetime.now(tz=UTC).date() - timedelta(days=1)


def plan(
    symbol: str, interval: str, first_day: date, last_day: date, *, today: date
) -> list[DumpFile]:
    """Monthly files for whole past months in the range, daily files for the rest."""
    files: list[DumpFile] = []
    cursor = date(first_day.year, first_day.month, 1)
    while cursor <= last_day:
        month_end = date(
            cursor.year, cursor.month, calendar.monthrange(cursor.year, cursor.month)[1]
        )
        lo, hi = max(cursor, first_day), min(month_end, last_day)
        whole = lo == cursor and hi == month_end and month_end < today
        if whole:
            files.append(DumpFile(symbol, interval, lo, hi, True))
        else:
            files.extend(DumpFile(symbol, interval, lo, hi, True).daily_files())
        cursor = month_end + timedelta(days=1)
    return files


def _covered_days(engine: Engine, *, symbol: str, interval: str) -> set[date]:
    """The days earlier successful downloads of this pair imported."""
    with engine.connect() as connection:
        recorded = runs.recent_runs(connection, limit=1_000_000, name=JOB_NAME)
    days: set[date] = set()
    for run in recorded:
        if run.status != runs.OK or (run.symbol, run.interval) != (symbol, interval):
            continue
        first, last = run.details.get("first_day"), run.details.get("last_day")
        if isinstance(first, str) and isinstance(last, str):
            start, stop = date.fromisoformat(first), date.fromisoformat(last)
            days.update(start + timedelta(days=n) for n in range((stop - start).days + 1))
    return days


def _merge(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as (first, last) ranges."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(days):
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _day_ms(day: date) -> int:
    return calendar.timegm(day.timetuple()) * 1000


def _import(
    engine: Engine, item: DumpFile, fetched: Fetched, on_progress: ProgressCallback | None
) -> WriteResult:
    """Imports one verified dump in one transaction and records it for later resumes."""
    from candlecast.files import describe, read_chunks

    first_ms, end_ms = _day_ms(item.first_day), _day_ms(item.last_day) + DAY_MS
    with recorded_run(engine, name=JOB_NAME, symbol=item.symbol, interval=item.interval) as details:
        details.update(
            file=item.name,
            url=fetched.url,
            sha256=fetched.sha256,
            bytes=fetched.size,
            first_day=item.first_day.isoformat(),
            last_day=item.last_day.isoformat(),
        )
        kind = describe(fetched.path, symbol=item.symbol, interval=item.interval)
        if kind.layout != "dump":
            raise DataFileError(fetched.url, "not a headerless kline dump")
        written = WriteResult()
        fetched_at = now_ms()
        with write_transaction(engine) as connection:
            for chunk in read_chunks(kind):
                if chunk and (chunk[0][0] < first_ms or chunk[-1][0] >= end_ms):
                    raise DataFileError(
                        fetched.url, f"holds candles outside {item.period}; refused"
                    )
                written.add(
                    candle_store.upsert_candles(
                        connection,
                        symbol=item.symbol,
                        interval=item.interval,
                        rows=chunk,
                        source="archive",
                        fetched_at=fetched_at,
                    )
                )
                if on_progress is not None:
                    on_progress(len(chunk))
        details.update(
            rows=written.received,
            inserted=written.inserted,
            repaired=written.repaired,
            enriched=written.enriched,
            unchanged=written.unchanged,
        )
    return written


def expected_candles(files: Iterable[DumpFile], interval: str) -> int:
    """Roughly how many candles the files hold, for a progress bar."""
    days = sum((item.last_day - item.first_day).days + 1 for item in files)
    return days * DAY_MS // interval_ms(interval)


def pending_files(
    engine: Engine, *, symbol: str, interval: str, first_day: date, last_day: date
) -> tuple[list[DumpFile], int]:
    """The files still to download, and how many planned ones earlier runs already imported."""
    files = plan(symbol, interval, first_day, last_day, today=yesterday_utc() + timedelta(days=1))
    covered = _covered_days(engine, symbol=symbol, interval=interval)
    todo = [item for item in files if not set(item.days()) <= covered]
    return todo, len(files) - len(todo)


def download(
    engine: Engine,
    client: DumpClient,
    *,
    symbol: str,
    interval: str,
    first_day: date,
    last_day: date,
    on_progress: ProgressCallback | None = None,
) -> DownloadReport:
    """Downloads, verifies and imports the pair's dumps for [first_day, last_day]."""
    interval_ms(interval)
    last_day = min(last_day, yesterday_utc())
    report = DownloadReport(symbol, interval, first_day, last_day)
    if first_day > last_day:
        return report
    todo, report.already = pending_files(
        engine, symbol=symbol, interval=interval, first_day=first_day, last_day=last_day
    )
    covered = _covered_days(engine, symbol=symbol, interval=interval) if todo else set()
    missing: list[date] = []
    queue = deque(todo)
    pending: deque[tuple[DumpFile, Future[Fetched | None]]] = deque()
    with (
        tempfile.TemporaryDirectory(prefix="candlecast-dumps-") as folder,
        ThreadPoolExecutor(_AHEAD, thread_name_prefix="dumps") as pool,
    ):
        try:
            while queue or pending:
                while queue and len(pending) < _AHEAD:
                    item = queue.popleft()
                    pending.append((item, pool.submit(client.fetch, item.url_path, Path(folder))))
                item, future = pending.popleft()
                fetched = future.result()
                if fetched is None:
                    if item.monthly:
                        # Not published (yet): the same days may exist as daily files.
                        days = [d for d in item.daily_files() if d.first_day not in covered]
                        queue.extendleft(reversed(days))
                    else:
                        missing.append(item.first_day)
                    continue
                try:
                    report.written.add(_import(engine, item, fetched, on_progress))
                finally:
                    fetched.path.unlink(missing_ok=True)
                report.imported.append(item.name)
        finally:
            for _, future in pending:
                future.cancel()
    report.missing = _merge(missing)
    return report
