"""`candlecast jobs [--failed] [--retry ID]`: the task queue's jobs (PostgreSQL only).

On PostgreSQL the service's work runs as procrastinate jobs, so that workers on other hosts
share it; this lists them with the host that ran each one and a failed job's error, and puts a
failed job back in line. On SQLite there is no queue (one process runs everything): job runs
are in `candlecast status` and on the Jobs page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from candlecast.cli.common import DatabaseOption, app, err, friendly, out, settings_from
from candlecast.domain import CandlecastError, NotFound

if TYPE_CHECKING:
    from rich.table import Table

    from candlecast.store.queue import QueueJob

NO_QUEUE = (
    "the task queue exists only on PostgreSQL; this database has none (SQLite runs every job "
    "in one process: see the Jobs page or `candlecast status`)"
)
ERROR_CHARS = 120


@app.command("jobs")
@friendly
def jobs(
    failed: Annotated[bool, typer.Option("--failed", help="Only failed jobs")] = False,
    retry: Annotated[
        int | None,
        typer.Option("--retry", metavar="ID", help="Put the failed job ID back in line, due now"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Newest first")] = 50,
    database_url: DatabaseOption = None,
) -> None:
    """List the task queue's jobs, newest first: task, pair, status, attempts, the host of the
    worker that took it and a failed job's error. `--retry ID` re-queues a failed job now."""
    from candlecast.store import queue
    from candlecast.store.db import create_store_engine, write_transaction

    settings = settings_from(database_url=database_url)
    engine = create_store_engine(settings.database_url, pool=False)
    try:
        if retry is not None:
            with write_transaction(engine) as connection:
                outcome = queue.retry_failed_job(connection, job_id=retry)
            _report_retry(retry, outcome)
            return
        with engine.connect() as connection:
            enabled = queue.queue_enabled(connection)
            found = queue.list_jobs(connection, status="failed" if failed else None, limit=limit)
    finally:
        engine.dispose()
    if not enabled:
        out.print(NO_QUEUE, highlight=False)
        return
    if not found:
        out.print("no failed job in the queue" if failed else "the queue holds no job yet")
        return
    out.print(jobs_table(found), soft_wrap=False)


def _report_retry(job_id: int, outcome: str) -> None:
    if outcome == "retried":
        out.print(f"job {job_id} is back in line; a worker takes it as soon as one is free")
        return
    if outcome == "disabled":
        raise CandlecastError(NO_QUEUE)
    if outcome == "not_found":
        raise NotFound(f"no job {job_id} in the queue")
    if outcome == "lock_taken":
        raise CandlecastError(
            f"job {job_id} was not re-queued: the same work already waits in the queue"
        )
    err.print(f"[bold red]error:[/] job {job_id} is not failed: only failed jobs are retried")
    raise typer.Exit(1)


def jobs_table(found: list[QueueJob]) -> Table:
    """The jobs as a table: id, task, pair, status, attempts, worker host, error."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for header in ("id", "task", "pair", "status", "attempts", "worker host", "error"):
        table.add_column(header, overflow="fold")
    for job in found:
        host = None if job.host is None else f"{job.host}:{job.pid}"
        error = (job.error or "").strip().splitlines()
        # Text, not markup: an error message may hold brackets.
        cells = (
            str(job.id),
            job.task,
            job.pair or "-",
            job.status,
            str(job.attempts),
            host or ("-" if job.worker_id is None else f"worker {job.worker_id}"),
            error[-1][:ERROR_CHARS] if error and job.status == "failed" else "-",
        )
        table.add_row(*map(Text, cells), style="red" if job.status == "failed" else None)
    return table
