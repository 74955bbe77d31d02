"""Importing a candle file (a dump, a header CSV or a Parquet export) into the store, recorded
in job_runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from candlecast.jobs.common import now_ms, recorded_run
from candlecast.store import candles as candle_store
from candlecast.store.candles import WriteResult
from candlecast.store.db import write_transaction

if TYPE_CHECKING:
    from candlecast.files import FileKind


@dataclass
class ImportReport:
    """What importing one file did."""

    path: str
    symbol: str
    interval: str
    source: str
    written: WriteResult


def import_file(
    engine: Engine,
    *,
    path: Path,
    symbol: str | None,
    interval: str | None,
    fallback: tuple[str, str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Loads one dump or CSV file in one transaction: all of it, or nothing."""
    # Imported here: file parsing needs pandas, which the network sync jobs never load.
    from candlecast.files import describe, read_chunks

    kind: FileKind = describe(path, symbol=symbol, interval=interval, fallback=fallback)
    with recorded_run(engine, name="import", symbol=kind.symbol, interval=kind.interval) as details:
        details["path"] = str(path)
        written = WriteResult()
        fetched_at = now_ms()
        with write_transaction(engine) as connection:
            for chunk in read_chunks(kind):
                written.add(
                    candle_store.upsert_candles(
                        connection,
                        symbol=kind.symbol,
                        interval=kind.interval,
                        rows=chunk,
                        source=kind.source,
                        fetched_at=fetched_at,
                    )
                )
                if on_progress is not None:
                    on_progress(len(chunk))
        details.update(
            {
                "source": kind.source,
                "rows": written.received,
                "inserted": written.inserted,
                "repaired": written.repaired,
                "enriched": written.enriched,
                "unchanged": written.unchanged,
                "repaired_sample": written.repaired_sample,
            }
        )
    return ImportReport(str(path), kind.symbol, kind.interval, kind.source, written)
