"""Scale-out on PostgreSQL with real processes: the API alone, and queue workers (one of them in
its own network namespace, reaching the database and the exchange over a veth link as another
host would). Every pair's tick runs exactly once, trainings spread over the workers, the stream's
shards fail over when their owner is killed, a worker killed mid-training loses nothing, and a
database restart is survived by every process without losing a queued job."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.queue.client import QueueClient
from candlecast.scheduler import periodic_operations, ticks_between
from candlecast.store import queue as queue_store
from candlecast.store import registry
from candlecast.store.leases import lease_owners
from candlecast.store.tables import job_runs, models
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.integration.test_many_pairs import (
    START,
    _check_exact,
    _check_ledger,
    _first_target,
    _markets,
    _ready_pairs,
)
from tests.integration.test_service_e2e import (
    STEP,
    Processes,
    _environment,
    _free_port,
    _wait_for,
    processes,
)
from tests.netns import netns_unavailable, network_namespace

__all__ = ["processes"]

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
# A 5m candle every 15 s: a stream failover of a few seconds stays inside one candle.
SPEED = 20.0
SHARDS = 4


def _stream_owners(engine: Engine) -> dict[int, int | None]:
    """Each shard's owning process id (from its lease session's application name)."""
    owners = lease_owners(engine, range(SHARDS))
    return {
        shard: int(name.rsplit(":", 1)[-1]) if name and name.startswith("candlecast-") else None
        for shard, name in owners.items()
    }


def _worker_pids(engine: Engine) -> dict[int, int]:
    """procrastinate worker id -> the process id it registered."""
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT worker_id, pid FROM queue_worker_hosts")).all()
    return {int(worker): int(pid) for worker, pid in rows}


def _periodic_jobs(engine: Engine, task: str, start_ms: int, end_ms: int) -> list[tuple[str, int]]:
    """(symbol, scheduled tick ms) of a periodic task's jobs scheduled in [start, end].

    A job's tick is its first schedule: a retry (its worker killed mid-job) moves the job's
    `scheduled_at` to the retry's instant, but the events keep when it was first due."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT job.args->>'symbol', (extract(epoch FROM tick.at) * 1000)::bigint "
                "FROM procrastinate_jobs AS job CROSS JOIN LATERAL ("
                "  SELECT min(event.at) AS at FROM procrastinate_events AS event"
                "  WHERE event.job_id = job.id AND event.type = 'scheduled'"
                ") AS tick "
                "WHERE job.task_name = :task AND tick.at IS NOT NULL "
                "AND tick.at BETWEEN to_timestamp(:start / 1000.0) "
                "AND to_timestamp(:end / 1000.0)"
            ),
            {"task": task, "start": start_ms, "end": end_ms},
        ).all()
    return [(str(symbol), int(at)) for symbol, at in rows]


def _netns_database_url(database_url: str, host: str, port: int) -> str:
    return make_url(database_url).set(host=host, port=port).render_as_string(hide_password=False)


@ON_POSTGRES
@pytest.mark.timeout(900)
def test_twenty_pairs_on_three_workers_one_on_another_network_tick_once_and_fail_over(
    engine: Engine,
    database_url: str,
    fake_exchange: FakeExchangeFactory,
    processes: Processes,
) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.fail(f"the network-namespace worker cannot run: {reason}")
    markets = _markets(20)
    fake = fake_exchange(MAIN_CSV, start=START, speed=SPEED, ws_update_ms=200, markets=markets[1:])
    pairs = [Pair(m.symbol, m.interval) for m in markets]
    extra = {
        "CANDLECAST_PAIRS": ",".join(map(str, pairs)),
        "CANDLECAST_BACKFILL_DAYS": "4",
        "CANDLECAST_TRAIN_DAYS": "4",
        "CANDLECAST_TRAIN_EVERY_SECONDS": "45",
        "CANDLECAST_INGEST_EVERY_SECONDS": "20",
        "CANDLECAST_STREAM_SHARDS": str(SHARDS),
        "CANDLECAST_WORKER_CONCURRENCY": "2",
    }
    env = _environment(database_url, fake, **extra)
    port = _free_port()
    processes.tail = 20_000
    with network_namespace() as namespace:
        db_relay = namespace.relay(make_url(database_url).port or 5432)
        fake_relay = namespace.relay(fake.port)
        remote = f"{namespace.host_ip}:{fake_relay.port}"
        far_env = {
            **env,
            "CANDLECAST_DATABASE_URL": _netns_database_url(
                database_url, namespace.host_ip, db_relay.port
            ),
            "CANDLECAST_BINANCE_URL": f"http://{remote}",
            "CANDLECAST_BINANCE_WS_URL": f"ws://{remote}",
        }
        processes.start(["serve", "--no-worker", "--port", str(port)], env)
        far = processes.start(["worker"], far_env, prefix=namespace.command([]))
        # The third worker is `serve`'s own: the API with one queue worker.
        serve_port = _free_port()
        near = [
            processes.start(["worker"], env),
            processes.start(["serve", "--port", str(serve_port)], env),
        ]
        workers = [far, *near]
        wanted = {(p.symbol, p.interval) for p in pairs}
        _wait_for(
            lambda: wanted <= _ready_pairs(engine), timeout=480, what="all 20 pairs forecasting"
        )
        _wait_for(
            lambda: None not in _stream_owners(engine).values(), timeout=30, what="every shard"
        )
        assert far.pid in _worker_pids(engine).values(), processes.logs()
        # Regression: `serve` with its queue worker reported 503 ("scheduler not running"), and
        # the pairs streamed by other processes as degraded.
        with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=10) as own:
            health = own.get("/api/health")
            assert health.status_code == 200, health.text

            def all_live() -> bool:
                listed = own.get("/api/pairs").json()["pairs"]
                statuses[:] = [(p["symbol"], p["status"], p["status_reason"]) for p in listed]
                return {status for _, status, _ in statuses} == {"live"}

            statuses: list[tuple[str, str, str | None]] = []
            # Summaries are re-read a few seconds after they change; none may stay degraded.
            deadline = time.monotonic() + 20
            while not all_live():
                assert time.monotonic() < deadline, [s for s in statuses if s[1] != "live"]
                time.sleep(0.5)
        firsts = {pair: _first_target(engine, pair) for pair in pairs}
        window_start = int(time.time() * 1000)
        time.sleep(20)

        # The owner of shard 0 dies without a word; another process takes its shards.
        victim_pid = _stream_owners(engine)[0]
        victim = next(w for w in workers if w.pid == victim_pid)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        survivors = {w.pid for w in workers if w is not victim}
        _wait_for(
            lambda: set(_stream_owners(engine).values()) <= survivors,
            timeout=30,
            what="the dead owner's shards taken over",
        )
        takeover = time.monotonic() - killed_at
        assert takeover <= 15, f"stream failover took {takeover:.1f} s"
        time.sleep(50)
        window_end = int(time.time() * 1000)
        observed_until = fake.clock.now_ms()
        time.sleep(8)  # the window's last candle is processed

        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        queue = api.get("/api/queue").json()
        listed = api.get("/api/pairs").json()["pairs"]
        alive = [w for w in workers if w is not victim]
        assert all(w.poll() is None for w in alive), processes.logs()
    logs = processes.logs()
    # The live workers, the namespace's among them unless it was the one killed.
    assert queue["enabled"] and {w["pid"] for w in queue["workers"]} >= {w.pid for w in alive}
    assert len(listed) == 20

    # Every candle exact, every candle forecast once (before it closed) and scored.
    last_closed = (observed_until - STEP) // STEP * STEP
    for market, pair in zip(markets, pairs, strict=True):
        _check_exact(engine, market, first=firsts[pair], last=last_closed)
        _check_ledger(engine, pair, first=firsts[pair], last=last_closed, logs=logs)

    # Every pair's periodic ticks in the window: each queued exactly once, and run.
    settings = Settings.model_validate(
        {k.removeprefix("CANDLECAST_").lower(): v for k, v in extra.items()}
    )
    inner_start, inner_end = window_start + 6_000, window_end - 6_000
    for task in ("ingest", "train"):
        jobs = _periodic_jobs(engine, f"candlecast.{task}", inner_start, inner_end)
        assert len(jobs) == len(set(jobs)), f"a {task} tick was queued twice"
        for pair in pairs:
            periodic = next(
                p for p in periodic_operations(settings, str(pair)) if p.operation == task
            )
            expected = {
                round(at * 1000)
                for at in ticks_between(periodic, inner_start / 1000, inner_end / 1000)
            }
            queued = {at for symbol, at in jobs if symbol == pair.symbol}
            assert queued == expected, (task, pair, sorted(queued), sorted(expected))

    # Trainings spread: no worker did more than 60% of them.
    worker_pids = _worker_pids(engine)
    with engine.connect() as connection:
        trained_by = [
            worker_pids.get(int(worker))
            for (worker,) in connection.execute(
                text(
                    "SELECT worker_id FROM procrastinate_jobs WHERE task_name = "
                    "'candlecast.train' AND status = 'succeeded' AND worker_id IS NOT NULL"
                )
            )
        ]
    shares = Counter(trained_by)
    assert sum(shares.values()) >= 20, shares
    assert max(shares.values()) <= 0.6 * sum(shares.values()), shares


def _job(engine: Engine, job_id: int) -> dict[str, object]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT status, worker_id FROM procrastinate_jobs WHERE id = :id"),
            {"id": job_id},
        ).one()
    return {"status": row.status, "worker_id": row.worker_id}


def _restart_postgres() -> None:
    version = next(p.name for p in Path("/etc/postgresql").iterdir())
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@ON_POSTGRES
@pytest.mark.timeout(900)
def test_killed_worker_mid_training_and_a_database_restart_lose_nothing(
    engine: Engine,
    database_url: str,
    fake_exchange: FakeExchangeFactory,
    processes: Processes,
) -> None:
    if not Path("/etc/postgresql").is_dir():
        pytest.fail("the database restart needs the local cluster (pg_ctlcluster)")
    markets = _markets(3)
    fake = fake_exchange(MAIN_CSV, start=START, speed=SPEED, markets=markets[1:])
    pairs = [Pair(m.symbol, m.interval) for m in markets]
    env = _environment(
        database_url,
        fake,
        CANDLECAST_PAIRS=",".join(map(str, pairs)),
        # 60 days: a training of 20 days could end (about 1 s) before the kill reached it.
        CANDLECAST_BACKFILL_DAYS="60",
        CANDLECAST_TRAIN_DAYS="60",
        CANDLECAST_TRAIN_EVERY_SECONDS="3600",
        CANDLECAST_INGEST_EVERY_SECONDS="10",
        CANDLECAST_STREAM="false",
    )
    workers = [processes.start(["worker"], env) for _ in range(2)]
    wanted = {(p.symbol, p.interval) for p in pairs}
    _wait_for(lambda: wanted <= _ready_pairs(engine), timeout=300, what="all 3 pairs ready")
    client = QueueClient(Settings(database_url=database_url))
    try:
        btc = pairs[0]
        with engine.connect() as connection:
            before = connection.execute(
                select(func.count()).select_from(models).where(models.c.symbol == btc.symbol)
            ).scalar_one()
        job_id = client.defer("train", btc, force=True)
        assert job_id is not None
        deadline = time.monotonic() + 60
        while _job(engine, job_id)["status"] != "doing":
            assert time.monotonic() < deadline, "the training never started"
            time.sleep(0.05)
        first_worker = int(str(_job(engine, job_id)["worker_id"]))
        victim_pid = _worker_pids(engine)[first_worker]
        victim = next(w for w in workers if w.pid == victim_pid)
        children = psutil.Process(victim.pid).children(recursive=True)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        # The kill must land mid-task, or this test proves nothing: the job is still running.
        assert _job(engine, job_id)["status"] == "doing", "the training ended before the kill"
        # Its training children end with it.
        _, still = psutil.wait_procs(children, timeout=15)
        assert not still, f"training children outlived their worker: {still}"

        def retried_elsewhere() -> bool:
            job = _job(engine, job_id)
            return job["status"] in ("doing", "succeeded") and job["worker_id"] != first_worker

        try:
            _wait_for(retried_elsewhere, timeout=45, what="the training retried elsewhere")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; job {_job(engine, job_id)}\n{processes.logs()}") from None
        restarted = time.monotonic() - killed_at
        assert restarted <= 30, f"the killed worker's training restarted after {restarted:.1f} s"
        _wait_for(
            lambda: _job(engine, job_id)["status"] == "succeeded", timeout=120, what="training"
        )
        with engine.connect() as connection:
            rows = connection.execute(
                select(models.c.id, models.c.artifact_sha256).where(models.c.symbol == btc.symbol)
            ).all()
            assert len(rows) == before + 1, processes.logs()
            # Every model whole: its artifact there and matching its hash.
            for _, digest in rows:
                assert registry.load_artifact(connection, sha256=digest)
            assert registry.champion_id(connection, symbol=btc.symbol, interval="5m") is not None

        # The database restarts under load: queued jobs survive and run, workers recover.
        survivor = next(w for w in workers if w is not victim)
        now_ms = int(time.time() * 1000)
        queued = [client.defer("forecast", pair, at_ms=now_ms + 4_000) for pair in pairs]
        assert all(job is not None for job in queued)
        client.close()
        restarted_at = int(time.time() * 1000)
        _restart_postgres()

        def recovered() -> bool:
            with engine.connect() as connection:
                live = queue_store.live_workers(connection, int(time.time() * 1000))
                ran = connection.execute(
                    select(func.count(func.distinct(job_runs.c.symbol))).where(
                        job_runs.c.name == "ingest", job_runs.c.started_at > restarted_at + 5_000
                    )
                ).scalar_one()
            return any(w.pid == survivor.pid for w in live) and ran == len(pairs)

        _wait_for(recovered, timeout=120, what="the worker back and ingesting every pair")

        def all_ran() -> bool:
            return all(_job(engine, int(job or 0))["status"] == "succeeded" for job in queued)

        _wait_for(all_ran, timeout=60, what=f"the jobs queued before the restart: {queued}")
        assert survivor.poll() is None, processes.logs()
    finally:
        client.close()
