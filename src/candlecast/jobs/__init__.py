"""Jobs: each a function over the store and the exchange, recorded in job_runs."""

from candlecast.jobs.common import DAY_MS, now_ms, recorded_run
from candlecast.jobs.imports import ImportReport, import_file
from candlecast.jobs.sync import (
    SyncReport,
    backfill,
    closed_window,
    ingest,
    reconcile,
)

__all__ = [
    "DAY_MS",
    "ImportReport",
    "SyncReport",
    "backfill",
    "closed_window",
    "import_file",
    "ingest",
    "now_ms",
    "reconcile",
    "recorded_run",
]
