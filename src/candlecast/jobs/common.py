"""What every job shares: the run record around it and the bookkeeping clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from candlecast.store import runs

DAY_MS = 86_400_000


def now_ms() -> int:
    """The local wall clock in epoch ms; only for bookkeeping (job times, fetched_at)."""
    return time.time_ns() // 1_000_000


@contextmanager
def recorded_run(
    engine: Engine, *, name: str, symbol: str | None, interval: str | None
) -> Iterator[dict[str, Any]]:
    """Records a job run around a block; the block fills the yielded details dict."""
    run_id = runs.start_run(
        engine, name=name, symbol=symbol, interval=interval, started_at=now_ms()
    )
    details: dict[str, Any] = {}
    try:
        yield details
    except BaseException as exc:
        details["error"] = str(exc) or type(exc).__name__
        details["error_type"] = type(exc).__name__
        runs.finish_run(
            engine, run_id=run_id, status=runs.FAILED, finished_at=now_ms(), details=details
        )
        raise
    status = runs.SKIPPED if details.get("skipped") else runs.OK
    runs.finish_run(engine, run_id=run_id, status=status, finished_at=now_ms(), details=details)
    details["run_id"] = run_id
