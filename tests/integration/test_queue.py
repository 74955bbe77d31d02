"""The task queue on PostgreSQL, with real procrastinate workers in this process over the use-case
layer on in-memory exchange and trainer: each pair's ticks are queued once however many workers
run, a new pair is backfilled and then trained, failures retry and then stay failed, bans wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from procrastinate.jobs import Job
from sqlalchemy import Engine, text

from candlecast.config import Settings
from candlecast.domain import ExchangeUnavailable, IPBanned, Pair, RateLimited, UnknownPair
from candlecast.queue.client import QueueClient, parse_queues
from candlecast.queue.tasks import MAX_ATTEMPTS, PairTaskRetry, WorkerParts, dispatch
from candlecast.queue.worker import QueueWorker, WorkerIdentity
from candlecast.runtime import Runtime
from candlecast.scheduler import Periodic, ticks_between
from candlecast.usecases import PairOperations, Parts
from tests.integration.test_service_e2e import _wait_for
from tests.usecase_fakes import MemoryExchange

NOW = 1_750_000_000_000
PAIRS = [Pair("AAAUSDT", "5m"), Pair("BBBUSDT", "5m"), Pair("CCCUSDT", "1h"), Pair("DDDUSDT", "5m")]


class Trainer:
    def __init__(self) -> None:
        self.calls: list[Pair] = []
        self.lock = threading.Lock()

    def __call__(self, pair: Pair, *, days: float, force: bool) -> dict[str, Any]:
        with self.lock:
            self.calls.append(pair)
        return {"model_id": None, "promoted": False, "decision": "recorded by the test"}


def _job(attempts: int) -> Job:
    return Job(id=1, queue="sync", lock=None, queueing_lock=None, task_name="t", attempts=attempts)


def test_retry_waits_out_bans_and_rate_limits_and_gives_up_on_what_cannot_mend() -> None:
    retry = PairTaskRetry()
    until = NOW + 120_000
    banned = retry.get_retry_decision(exception=IPBanned(until), job=_job(3))
    assert banned is not None and banned.retry_at == datetime.fromtimestamp(until / 1000, UTC)
    limited = retry.get_retry_decision(exception=RateLimited(42.4), job=_job(0))
    assert limited is not None and limited.retry_at is not None
    assert 41 <= (limited.retry_at - datetime.now(UTC)).total_seconds() <= 43
    assert retry.get_retry_decision(exception=UnknownPair("gone"), job=_job(0)) is None
    down = ExchangeUnavailable("no route")
    assert retry.get_retry_decision(exception=down, job=_job(0)) is not None
    assert retry.get_retry_decision(exception=down, job=_job(MAX_ATTEMPTS - 1)) is None


def test_ticks_between_is_half_open_and_offset() -> None:
    periodic = Periodic("ingest", 10, 3.0)
    assert ticks_between(periodic, 0, 30) == [3.0, 13.0, 23.0]
    assert ticks_between(periodic, 3, 13) == [13.0]
    assert ticks_between(periodic, 13.5, 22.9) == []
    # Consecutive windows never share nor miss a tick.
    windows = [ticks_between(periodic, start, start + 5) for start in range(0, 100, 5)]
    flat = [tick for window in windows for tick in window]
    assert flat == sorted(set(flat)) == [3.0 + 10 * k for k in range(10)]


def test_queues_option_is_checked() -> None:
    assert parse_queues(None) is None and parse_queues(" ") is None
    assert parse_queues("train, sync,train") == ["train", "sync"]
    with pytest.raises(Exception, match="unknown queue"):
        parse_queues("sync,gpu")


# The queue exists on PostgreSQL only: these tests take the database fixture's PostgreSQL side.
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


class Cluster:
    """Queue workers in this process, each with its own procrastinate app and connections."""

    def __init__(self, url: str, engine: Engine, **settings: Any) -> None:
        self.settings = Settings(
            database_url=url, backfill_days=1, train_days=2, stream=False, **settings
        )
        self.engine = engine
        self.exchange = MemoryExchange(PAIRS, now_ms=NOW, history_ms=2 * 86_400_000)
        self.trainer = Trainer()
        self.operations = PairOperations(
            Parts(
                engine=engine,
                settings=self.settings,
                exchange=lambda: self.exchange,
                exchange_now=lambda: self.exchange.now_ms,
                trainer=self.trainer,
                runtime=Runtime(scheduler_enabled=True),
            )
        )
        self.client = QueueClient(self.settings)
        self.errors: list[tuple[int, str]] = []
        self.registered: list[WorkerIdentity] = []
        self.workers: list[QueueWorker] = []

    def parts(self) -> WorkerParts:
        return WorkerParts(
            operations=self.operations,
            client=self.client,
            settings=self.settings,
            record_error=lambda job, error: self.errors.append((job, error)),
        )

    def start(self, count: int, queues: list[str] | None = None) -> None:
        for _ in range(count):
            worker = QueueWorker(
                self.parts(), queues=queues, concurrency=2, on_registered=self.registered.append
            )
            worker.start()
            self.workers.append(worker)
        for worker in self.workers:
            assert worker.started.wait(20), "a queue worker did not start"

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.client.close()

    def jobs(self, task: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT id, status, attempts, scheduled_at, args, worker_id "
                    "FROM procrastinate_jobs WHERE task_name = :task ORDER BY id"
                ),
                {"task": task},
            ).mappings()
            return [dict(row) for row in rows]


@pytest.fixture
def cluster(database_url: str, engine: Engine) -> Iterator[Cluster]:
    built = Cluster(database_url, engine, ingest_every_seconds=2, dispatch_every_seconds=1)
    yield built
    built.stop()


@ON_POSTGRES
@pytest.mark.timeout(120)
def test_three_workers_queue_each_tick_once_and_start_new_pairs(cluster: Cluster) -> None:
    for pair in PAIRS:
        cluster.operations.follow(pair)
    cluster.start(3)
    assert len(cluster.registered) == 6  # a sync and a train worker each
    # Start-up: every pair is backfilled, then trained once (the backfill queued it).
    _wait_for(
        lambda: len(cluster.trainer.calls) >= len(PAIRS), timeout=60, what="the first trainings"
    )
    assert sorted(cluster.trainer.calls, key=str) == sorted(PAIRS, key=str)
    backfills = cluster.jobs("candlecast.backfill")
    assert len(backfills) == len(PAIRS) and {j["status"] for j in backfills} == {"succeeded"}
    time.sleep(8)
    ingests = cluster.jobs("candlecast.ingest")
    keys = [(j["args"]["symbol"], j["scheduled_at"]) for j in ingests]
    assert len(keys) == len(set(keys)), "a tick was queued twice"
    done = [j for j in ingests if j["status"] == "succeeded"]
    # Every 2 s for about 8 s: about 4 per pair, never one per worker (12).
    for pair in PAIRS:
        mine = [j for j in done if j["args"]["symbol"] == pair.symbol]
        assert 2 <= len(mine) <= 6, (pair, len(mine))
    dispatches = cluster.jobs("candlecast.dispatch")
    stamps = [j["args"]["timestamp"] for j in dispatches]
    assert len(stamps) == len(set(stamps)), "a dispatch tick ran twice"
    # Work spread over the workers.
    assert len({j["worker_id"] for j in done}) >= 2


@ON_POSTGRES
@pytest.mark.timeout(120)
def test_failing_task_retries_then_stays_failed_with_its_error(cluster: Cluster) -> None:
    pair = PAIRS[0]
    cluster.operations.follow(pair)
    with cluster.engine.begin() as connection:
        connection.execute(
            text("UPDATE pairs SET backfilled_at = 1 WHERE symbol = :s"), {"s": pair.symbol}
        )
    cluster.exchange.failure = ExchangeUnavailable("the test unplugged the exchange")
    job_id = cluster.client.defer("reconcile", pair)
    assert job_id is not None
    assert cluster.client.defer("reconcile", pair) is None  # one waits already
    # Retries back off 2, 4, 8, 16 s: the test sends the job back at once each time.
    cluster.start(1, queues=["sync"])

    def failed() -> bool:
        with cluster.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE procrastinate_jobs SET scheduled_at = now() "
                    "WHERE id = :id AND status = 'todo'"
                ),
                {"id": job_id},
            )
        return bool(cluster.jobs("candlecast.reconcile")[0]["status"] == "failed")

    _wait_for(failed, timeout=60, what="the job to fail for good")
    job = cluster.jobs("candlecast.reconcile")[0]
    assert job["attempts"] == MAX_ATTEMPTS
    # The job's own error (a reconcile tick the dispatcher queued meanwhile may fail too).
    errors = [message for failed_id, message in cluster.errors if failed_id == job_id]
    assert errors and "unplugged" in errors[-1]


@ON_POSTGRES
@pytest.mark.timeout(60)
def test_dispatch_alone_queues_each_tick_of_a_window_once(cluster: Cluster) -> None:
    for pair in PAIRS[:2]:
        cluster.operations.follow(pair)
    with cluster.engine.begin() as connection:
        connection.execute(text("UPDATE pairs SET backfilled_at = 1"))
    parts = cluster.parts()
    start = 1_900_000_000  # in the future: the jobs wait, nobody runs them
    queued = dispatch(parts, start, start + 10)
    # Ingest every 2 s: 5 ticks per pair in 10 s; train and reconcile perhaps once.
    ingests = cluster.jobs("candlecast.ingest")
    assert queued >= 2
    # Only one per pair waits at a time (the queueing lock): later ticks coalesce into it.
    assert sorted(j["args"]["symbol"] for j in ingests) == sorted(p.symbol for p in PAIRS[:2])
    assert dispatch(parts, start, start + 10) == 0


@ON_POSTGRES
@pytest.mark.timeout(60)
def test_a_running_job_can_be_retried_while_the_next_one_waits(cluster: Cluster) -> None:
    # Regression: with procrastinate's queueing locks, retrying a failed or stalled job while
    # the next tick of the same operation waited failed on the unique index, and the job stayed
    # `doing` for good, holding its pair's lock.
    pair = PAIRS[0]
    first = cluster.client.defer("ingest", pair)
    assert first is not None
    assert cluster.client.defer("ingest", pair) is None  # one waits already
    with cluster.engine.begin() as connection:
        connection.execute(
            text("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = :id"), {"id": first}
        )
    second = cluster.client.defer("ingest", pair)
    assert second is not None and second != first
    manager = cluster.client._opened().job_manager
    manager.retry_job_by_id(first, retry_at=datetime.now(UTC))
    statuses = {j["id"]: j["status"] for j in cluster.jobs("candlecast.ingest")}
    assert statuses == {first: "todo", second: "todo"}
