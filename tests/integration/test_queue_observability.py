"""The task queue seen from outside: store figures, /api/queue, /metrics, `candlecast jobs`
(with --retry) and the Jobs page's Queue section.

Jobs are deferred through procrastinate itself and moved through its states with its own SQL
functions (what a worker calls), on a fresh PostgreSQL schema; SQLite checks the paths where
there is no queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import procrastinate
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, Engine, make_url, text
from typer.testing import CliRunner

from candlecast.cli import app as cli_app
from candlecast.store import queue
from candlecast.store.db import write_transaction
from tests.integration.api_support import client

POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)
on_postgres = pytest.mark.parametrize("database_url", [POSTGRES], indirect=True)
on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Deferred:
    """Ids of the jobs one scenario deferred."""

    train: int
    ingest: int
    later: int


def procrastinate_app(database_url: str) -> procrastinate.App:
    """procrastinate's own App on the test schema, with candlecast's task names and queues."""
    url = make_url(database_url)
    options = str(url.query.get("options", ""))
    conninfo = url.set(drivername="postgresql").difference_update_query(["options"])
    connector = procrastinate.SyncPsycopgConnector(
        conninfo=conninfo.render_as_string(hide_password=False),
        kwargs={"options": options},
        min_size=1,
        max_size=1,
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="candlecast.train", queue="train")
    def train(symbol: str, interval: str, days: float) -> None:
        """Never run here: only deferred."""

    @app.task(name="candlecast.ingest", queue="sync")
    def ingest(symbol: str, interval: str) -> None:
        """Never run here: only deferred."""

    return app


def defer_jobs(database_url: str) -> Deferred:
    """A train job, an ingest job due now and an ingest job due in an hour."""
    app = procrastinate_app(database_url)
    with app.open():
        train = app.tasks["candlecast.train"].configure(queueing_lock="train:BTCUSDT:5m")
        ingest = app.tasks["candlecast.ingest"]
        ids = Deferred(
            train=train.defer(symbol="BTCUSDT", interval="5m", days=30),
            ingest=ingest.defer(symbol="BTCUSDT", interval="5m"),
            later=ingest.configure(schedule_in={"hours": 1}).defer(symbol="ETHUSDT", interval="5m"),
        )
    return ids


def register_worker(connection: Connection, *, host: str = "box-a", pid: int = 4242) -> int:
    worker_id = int(
        connection.execute(text("SELECT procrastinate_register_worker_v1()")).scalar_one()
    )
    queue.register_worker_host(
        connection,
        worker_id=worker_id,
        host=host,
        pid=pid,
        name=f"candlecast-worker-{pid}",
        queues="sync,train",
        concurrency=2,
        started_at=now_ms(),
    )
    return worker_id


def fetch(connection: Connection, queue_name: str, worker_id: int) -> int:
    """What a worker does to take the next job of a queue: todo -> doing."""
    found = connection.execute(
        text("SELECT id FROM procrastinate_fetch_job_v2(ARRAY[:q]::varchar[], :w)"),
        {"q": queue_name, "w": worker_id},
    ).scalar_one()
    return int(found)


def fail(connection: Connection, job_id: int, error: str) -> None:
    """What the task wrapper and the worker do when a job raises: record the error, fail it."""
    connection.execute(
        text("SELECT procrastinate_finish_job_v1(:id, 'failed', false)"), {"id": job_id}
    )
    queue.record_job_error(connection, job_id, error, now_ms())


@pytest.fixture
def scenario(engine: Engine, database_url: str) -> Iterator[tuple[Deferred, int]]:
    """Deferred jobs; one worker on box-a took the due ingest (running) and the train job,
    which failed."""
    ids = defer_jobs(database_url)
    with write_transaction(engine) as connection:
        worker = register_worker(connection)
        assert fetch(connection, "sync", worker) == ids.ingest
        assert fetch(connection, "train", worker) == ids.train
        fail(connection, ids.train, "Traceback ...\nExchangeUnavailable: [418] banned")
    yield ids, worker


def counts(figures: queue.QueueFigures) -> dict[tuple[str, str, str], int]:
    return {(c.queue, c.task, c.status): c.count for c in figures.jobs}


@on_postgres
def test_figures_count_jobs_waiting_depth_oldest_wait_and_live_workers(
    engine: Engine, database_url: str
) -> None:
    ids = defer_jobs(database_url)
    with write_transaction(engine) as connection:
        worker = register_worker(connection)
        fetch(connection, "sync", worker)
        # The train job was deferred two minutes ago.
        connection.execute(
            text(
                "UPDATE procrastinate_events SET at = now() - interval '120 seconds' "
                "WHERE job_id = :id AND type = 'deferred'"
            ),
            {"id": ids.train},
        )
    with engine.connect() as connection:
        figures = queue.queue_figures(connection, now_ms())
    assert figures.enabled
    assert counts(figures) == {
        ("sync", "candlecast.ingest", "doing"): 1,
        ("sync", "candlecast.ingest", "todo"): 1,
        ("train", "candlecast.train", "todo"): 1,
    }
    depth = {d.queue: d for d in figures.queues}
    # The ingest due in an hour is not waiting yet; the due one runs.
    assert depth["sync"].waiting == 0 and depth["sync"].oldest_waiting_seconds is None
    assert depth["train"].waiting == 1
    assert 119 <= (depth["train"].oldest_waiting_seconds or 0) < 300
    assert figures.retries == 0
    [live] = figures.workers
    assert (live.worker_id, live.host, live.pid, live.queues) == (
        worker,
        "box-a",
        4242,
        "sync,train",
    )
    # A worker without a heartbeat for over 30 s is not live.
    with engine.connect() as connection:
        later = queue.queue_figures(connection, now_ms() + 31_000)
    assert later.workers == []


@on_postgres
def test_list_jobs_names_pair_host_times_and_the_error(
    engine: Engine, scenario: tuple[Deferred, int]
) -> None:
    ids, worker = scenario
    with engine.connect() as connection:
        failed = queue.list_jobs(connection, status="failed")
        everything = queue.list_jobs(connection)
        waiting = queue.list_jobs(connection, status="todo")
    [job] = failed
    assert (job.id, job.task, job.pair, job.queue, job.status) == (
        ids.train,
        "candlecast.train",
        "BTCUSDT:5m",
        "train",
        "failed",
    )
    assert (job.worker_id, job.host, job.pid, job.attempts) == (worker, "box-a", 4242, 1)
    assert job.error is not None and job.error.endswith("[418] banned")
    assert job.started is not None and job.finished is not None and job.started <= job.finished
    assert [j.id for j in everything] == [ids.later, ids.ingest, ids.train]
    [scheduled] = waiting
    assert scheduled.id == ids.later and scheduled.scheduled_at is not None
    assert scheduled.scheduled_at > now_ms() + 3_000_000 and scheduled.finished is None
    with engine.connect() as connection, pytest.raises(ValueError):
        queue.list_jobs(connection, status="nope")


@on_postgres
def test_retry_puts_a_failed_job_back_and_counts_it(
    engine: Engine, scenario: tuple[Deferred, int]
) -> None:
    ids, _ = scenario
    with write_transaction(engine) as connection:
        assert queue.retry_failed_job(connection, job_id=ids.train) == "retried"
        assert queue.retry_failed_job(connection, job_id=ids.train) == "not_failed"
        assert queue.retry_failed_job(connection, job_id=10**9) == "not_found"
    with engine.connect() as connection:
        job = queue.get_job(connection, job_id=ids.train)
        figures = queue.queue_figures(connection, now_ms() + 1000)
    assert job is not None and job.status == "todo" and job.attempts == 2
    assert figures.retries == 1
    assert {d.queue: d.waiting for d in figures.queues}["train"] == 1


@on_postgres
def test_retry_refuses_when_the_same_work_already_waits(
    engine: Engine, database_url: str, scenario: tuple[Deferred, int]
) -> None:
    ids, _ = scenario
    app = procrastinate_app(database_url)
    with app.open():
        task = app.tasks["candlecast.train"].configure(queueing_lock="train:BTCUSDT:5m")
        task.defer(symbol="BTCUSDT", interval="5m", days=30)
    with write_transaction(engine) as connection:
        assert queue.retry_failed_job(connection, job_id=ids.train) == "lock_taken"
    with engine.connect() as connection:
        job = queue.get_job(connection, job_id=ids.train)
    assert job is not None and job.status == "failed"


@on_postgres
def test_worker_hosts_and_errors_of_gone_workers_and_jobs_are_pruned(
    engine: Engine, scenario: tuple[Deferred, int]
) -> None:
    ids, worker = scenario
    with write_transaction(engine) as connection:
        connection.execute(text("SELECT procrastinate_unregister_worker_v1(:w)"), {"w": worker})
        queue.record_job_error(connection, 10**9, "a job procrastinate deleted", now_ms())
        other = register_worker(connection, host="box-b", pid=7)
        hosts = connection.execute(text("SELECT worker_id FROM queue_worker_hosts")).scalars()
        errors = connection.execute(text("SELECT job_id FROM queue_job_errors")).scalars()
        assert (list(hosts), sorted(errors)) == ([other], [ids.train])


@on_postgres
def test_periodic_schedule_shows_the_newest_defer_of_each_task(engine: Engine) -> None:
    defer = text(
        "SELECT procrastinate_defer_periodic_job_v2('sync', NULL, NULL, 'candlecast.dispatch', "
        "0, '', :at, '{}'::jsonb)"
    )
    with write_transaction(engine) as connection:
        for at in (1_764_547_200, 1_764_547_260):
            connection.execute(defer, {"at": at})
    with engine.connect() as connection:
        [entry] = queue.periodic_schedule(connection)
    assert (entry.task_name, entry.periodic_id, entry.defer_timestamp) == (
        "candlecast.dispatch",
        "",
        1_764_547_260,
    )
    assert entry.job_id is not None and entry.job_status == "todo"


def _scrape(app_client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    store = app_client.app.state.metrics.store  # type: ignore[attr-defined]
    store.ttl, store.max_wait = 0.0, 30.0
    response = app_client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@on_postgres
def test_api_queue_and_metrics_show_the_queue(
    engine: Engine, database_url: str, scenario: tuple[Deferred, int]
) -> None:
    ids, worker = scenario
    http = client(engine, database_url)
    body: dict[str, Any] = http.get("/api/queue").json()
    assert body["enabled"] is True
    assert [j["id"] for j in body["failed"]] == [ids.train]
    assert body["failed"][0]["error"].endswith("[418] banned")
    assert body["failed"][0]["host"] == "box-a" and body["failed"][0]["pair"] == "BTCUSDT:5m"
    assert [j["id"] for j in body["running"]] == [ids.ingest]
    assert [j["id"] for j in body["waiting"]] == [ids.later]
    assert [j["id"] for j in body["recent"]] == [ids.later, ids.ingest, ids.train]
    assert body["workers"][0]["worker_id"] == worker
    assert body["workers"][0]["queues"] == ["sync", "train"]
    assert body["periodic"] == [] and body["retries"] == 0
    assert http.get("/api/queue?limit=1").json()["recent"][0]["id"] == ids.later
    samples = _scrape(http)
    jobs = "candlecast_queue_jobs"
    failed = {"queue": "train", "task": "candlecast.train", "status": "failed"}
    assert samples[(jobs, frozenset(failed.items()))] == 1
    assert samples[("candlecast_queue_waiting", frozenset({("queue", "sync")}))] == 0
    assert samples[("candlecast_queue_oldest_waiting_seconds", frozenset({("queue", "sync")}))] == 0
    assert samples[("candlecast_queue_retries_total", frozenset())] == 0
    assert samples[("candlecast_queue_workers", frozenset())] == 1


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli_app, list(args))
    return result.exit_code, result.stdout, result.stderr


@on_postgres
def test_cli_lists_jobs_and_retries_a_failed_one(
    engine: Engine, database_url: str, scenario: tuple[Deferred, int]
) -> None:
    ids, _ = scenario
    code, stdout, stderr = _cli("jobs", "--database-url", database_url)
    assert code == 0, stderr
    for word in ("candlecast.train", "candlecast.ingest", "BTCUSDT:5m", "ETHUSDT:5m", "box-a:4242"):
        assert word in stdout
    assert "ExchangeUnavailable: [418] banned" in stdout
    code, stdout, stderr = _cli("jobs", "--failed", "--database-url", database_url)
    assert code == 0, stderr
    assert "candlecast.train" in stdout and "candlecast.ingest" not in stdout
    code, stdout, stderr = _cli("jobs", "--retry", str(ids.train), "--database-url", database_url)
    assert code == 0, stderr
    assert f"job {ids.train} is back in line" in stdout
    code, stdout, stderr = _cli("jobs", "--retry", str(ids.train), "--database-url", database_url)
    assert code == 1 and "not failed" in stderr
    code, stdout, stderr = _cli("jobs", "--retry", "999999", "--database-url", database_url)
    assert code == 1 and "no job 999999" in stderr
    code, stdout, _ = _cli("jobs", "--failed", "--database-url", database_url)
    assert code == 0 and "no failed job" in stdout


@on_postgres
def test_jobs_page_has_the_queue_section(engine: Engine, database_url: str) -> None:
    http = client(engine, database_url)
    page = http.get("/jobs")
    assert page.status_code == 200
    assert 'id="queue" hidden' in page.text and "/static/js/jobs_queue.js" in page.text
    for table in ("q-workers", "q-waiting", "q-running", "q-failed", "q-periodic"):
        assert f'id="{table}"' in page.text
    script = http.get("/static/js/jobs_queue.js")
    assert script.status_code == 200 and "/api/queue" in script.text


@on_sqlite
def test_no_queue_on_sqlite(engine: Engine, database_url: str) -> None:
    with write_transaction(engine) as connection:
        # The tables exist on SQLite too; writing to them never fails.
        queue.register_worker_host(
            connection,
            worker_id=1,
            host="h",
            pid=1,
            name="n",
            queues="",
            concurrency=1,
            started_at=0,
        )
        queue.record_job_error(connection, 1, "boom", 0)
        assert queue.retry_failed_job(connection, job_id=1) == "disabled"
    with engine.connect() as connection:
        assert queue.queue_figures(connection, now_ms()) == queue.QueueFigures(enabled=False)
        assert queue.list_jobs(connection, status="failed") == []
        assert queue.periodic_schedule(connection) == []
    http = client(engine, database_url)
    body = http.get("/api/queue").json()
    assert body["enabled"] is False and body["recent"] == [] and body["workers"] == []
    assert not any(name.startswith("candlecast_queue") for name, _ in _scrape(http))
    code, stdout, _ = _cli("jobs", "--database-url", database_url)
    assert code == 0 and "only on PostgreSQL" in stdout
    code, _, stderr = _cli("jobs", "--retry", "1", "--database-url", database_url)
    assert code == 1 and "only on PostgreSQL" in stderr
