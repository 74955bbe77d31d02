"""Long POSTs (train, backfill) run as recorded jobs: the request waits a bounded time for the
answer, and past it (or with `wait=false`) gets 202 with the job's id to follow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine

from candlecast.clock import host_clock_ms
from candlecast.store import runs

log = logging.getLogger(__name__)


class BackgroundJobs:
    """A small pool for API-started jobs; each job is a row in job_runs from its first moment,
    so `GET /api/jobs/{id}` shows it whether or not the request that started it still waits."""

    def __init__(self, engine: Engine, *, workers: int = 2) -> None:
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="candlecast-api")

    def submit(
        self, *, name: str, symbol: str, interval: str, work: Callable[[], BaseModel]
    ) -> tuple[int, Future[BaseModel]]:
        """Records the run as running, starts `work`, and returns the run id and its future."""
        run_id = runs.start_run(
            self._engine, name=name, symbol=symbol, interval=interval, started_at=host_clock_ms()
        )
        return run_id, self._pool.submit(self._run, run_id, work)

    def _run(self, run_id: int, work: Callable[[], BaseModel]) -> BaseModel:
        try:
            result = work()
        except BaseException as exc:
            details: dict[str, Any] = {
                "error": str(exc) or type(exc).__name__,
                "error_type": type(exc).__name__,
            }
            runs.finish_run(
                self._engine,
                run_id=run_id,
                status=runs.FAILED,
                finished_at=host_clock_ms(),
                details=details,
            )
            raise
        runs.finish_run(
            self._engine,
            run_id=run_id,
            status=runs.OK,
            finished_at=host_clock_ms(),
            details={"result": result.model_dump(mode="json")},
        )
        return result


async def wait_for(future: Future[BaseModel], seconds: float) -> BaseModel | None:
    """The job's result if it ends within `seconds` (its error is raised), else None; the job
    goes on either way."""
    if seconds <= 0:
        # No wait means 202 every time, even for a job that already ended: callers then
        # always follow the job, whatever the race between it and this answer.
        return None
    wrapped = asyncio.wrap_future(future)
    # The job's error is recorded in its run; retrieving it here keeps asyncio from warning
    # about an exception nobody read when the request stopped waiting first.
    wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())
    done, _ = await asyncio.wait({wrapped}, timeout=seconds)
    if not done:
        return None
    return wrapped.result()
