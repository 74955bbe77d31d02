"""Concurrency scenarios: SQLite reads under writers, CLI beside serve, PostgreSQL replicas.

Shared by tests/reliability/test_concurrency.py and benchmarks/reliability.py.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from candlecast.jobs import sync
from candlecast.runtime import Runtime
from candlecast.scheduler import ScheduledJob, Scheduler
from candlecast.store import db
from candlecast.store.tables import job_runs, job_ticks
from tests.fake_exchange.server import FakeExchange
from tests.reliability.exchange_scenarios import INTERVAL, SYMBOL, fast_client
from tests.reliability.kill_scenarios import integrity
from tests.reliability.support import (
    Tally,
    check_exact,
    cli,
    cli_environment,
    cli_log,
    closed_window,
    free_port,
    wait_for,
)

DAYS = 20
READ_PATHS = ("/api/candles", "/api/jobs", "/api/models", "/api/health")


@dataclass
class SharedFileFigures:
    """What readers saw while writers worked on the same SQLite file."""

    reads: Counter[str] = field(default_factory=Counter)
    locked: int = 0
    writer_exits: dict[str, int] = field(default_factory=dict)
    writer_seconds: dict[str, float] = field(default_factory=dict)
    ready_seconds: float = 0.0
    trained_seconds: float = 0.0
    tally: Tally = field(default_factory=Tally)


def _reader(
    base: str, stop: threading.Event, figures: SharedFileFigures, lock: threading.Lock
) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        n = 0
        while not stop.is_set():
            path = READ_PATHS[n % len(READ_PATHS)]
            n += 1
            try:
                response = http.get(path)
                status, body = str(response.status_code), response.text
            except httpx.HTTPError as exc:
                status, body = type(exc).__name__, ""
            with lock:
                figures.reads[f"{path} {status}"] += 1
                figures.locked += int("database is locked" in body)


def _run_writer(args: list[str], env: dict[str, str], folder: Path) -> int:
    """Runs a CLI writer; a refusal because serve holds the same job's lock is retried."""
    for _ in range(30):
        (folder / "cli.log").unlink(missing_ok=True)
        code = cli(args, env, folder).wait(timeout=300)
        if code == 0 or "already running" not in cli_log(folder):
            return code
        time.sleep(2.0)
    return code


def sqlite_writers_beside_serve(
    fake: FakeExchange, folder: Path, *, cli_train: bool = False
) -> SharedFileFigures:
    """`serve` (scheduler on: backfill, training, ingest every 3 s) on a SQLite file, readers
    hammering its API through serve's first training, and CLI backfill and ingest (and, with
    cli_train, a second training) on the same file meanwhile."""
    url = f"sqlite:///{folder / 'shared.db'}"
    env = cli_environment(
        url,
        fake.base_url,
        CANDLECAST_BACKFILL_DAYS=str(DAYS),
        # A short training window: training runs (and is read beside) in seconds.
        CANDLECAST_TRAIN_DAYS="7",
        CANDLECAST_STREAM="false",
        CANDLECAST_INGEST_EVERY_SECONDS="3",
        CANDLECAST_TRAIN_EVERY_SECONDS="3600",
        CANDLECAST_RECONCILE_EVERY_SECONDS="3600",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (folder / "serve").mkdir()
    server = cli(["serve", "--port", str(port)], env, folder / "serve")
    figures = SharedFileFigures()
    stop, lock = threading.Event(), threading.Lock()
    readers: list[threading.Thread] = []
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/candles?limit=1", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        figures.ready_seconds = wait_for(
            up, timeout=90, what=f"serve to answer: {cli_log(folder / 'serve')}"
        )
        readers = [
            threading.Thread(target=_reader, args=(base, stop, figures, lock), daemon=True)
            for _ in range(3)
        ]
        for reader in readers:
            reader.start()
        writers = [["backfill", "--days", str(DAYS)], ["ingest"]]
        for args in [*writers, *([["train", "--force"]] if cli_train else [])]:
            began = time.monotonic()
            figures.writer_exits[args[0]] = _run_writer(args, env, folder)
            figures.writer_seconds[args[0]] = round(time.monotonic() - began, 1)

        def trained() -> bool:
            return httpx.get(f"{base}/api/models", timeout=10).json().get("champion_id") is not None

        # Keep reading until serve's own first training has finished and been promoted.
        figures.trained_seconds = wait_for(trained, timeout=240, what="serve's first model")
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    served = cli_log(folder / "serve", 200_000)
    figures.locked += served.count("database is locked")
    # Everything up to the exchange's present must now be stored exactly once, exactly.
    fake.clock.set(speed=0)
    final = cli(["ingest"], env, folder).wait(timeout=120)
    figures.writer_exits["final ingest"] = final
    engine = db.create_store_engine(url, pool=False)
    try:
        now = fake.clock.now_ms()
        first, last = closed_window(now, DAYS)
        figures.tally = check_exact(engine, fake.market, first=first, last=last, exchange_now=now)
        problems = integrity(engine)
    finally:
        engine.dispose()
    if problems:
        figures.tally.wrong += 1
        figures.tally.notes.append(f"integrity_check: {problems[:3]}")
    return figures


@dataclass
class ReplicaFigures:
    """Ticks claimed and job bodies run by several schedulers sharing one PostgreSQL."""

    claimed: int = 0
    runs: int = 0
    job_runs: int = 0
    holders: int = 0
    tally: Tally = field(default_factory=Tally)


def replicas_on_postgres(
    database_url: str, fake: FakeExchange, *, replicas: int = 4, seconds: float = 8.0
) -> ReplicaFigures:
    """Several schedulers (each its own engine, like separate replicas) run a real ingest every
    second: each tick must run once in total, never once per replica."""
    engines: list[Engine] = []
    schedulers: list[Scheduler] = []
    runs: list[str] = []
    # The exchange's time at each finished ingest: the check covers what the last one could see,
    # not candles that closed after the schedulers stopped.
    seen_server_times: list[int] = []
    lock = threading.Lock()
    setup = db.create_store_engine(database_url)
    db.upgrade(setup)
    with fast_client(fake.base_url) as client:
        sync.backfill(setup, client, symbol=SYMBOL, interval=INTERVAL, days=DAYS)

    def body_for(engine: Engine, name: str) -> Any:
        def body() -> None:
            with lock:
                runs.append(name)
            with fast_client(fake.base_url) as client:
                report = sync.ingest(engine, client, symbol=SYMBOL, interval=INTERVAL, days=DAYS)
            with lock:
                seen_server_times.append(report.server_time)

        return body

    started = int(time.time() * 1000)
    for index in range(replicas):
        engine = db.create_store_engine(database_url)
        engines.append(engine)
        job = ScheduledJob("ingest", 1, body_for(engine, f"replica-{index}"))
        scheduler = Scheduler(engine=engine, runtime=Runtime(), jobs=[job])
        schedulers.append(scheduler)
    for scheduler in schedulers:
        scheduler.start()
    time.sleep(seconds)
    for scheduler in schedulers:
        scheduler.shutdown()
    time.sleep(2.0)  # let a body that already started finish
    figures = ReplicaFigures(runs=len(runs), holders=len(set(runs)))
    with setup.connect() as connection:
        figures.claimed = connection.execute(
            select(func.count())
            .select_from(job_ticks)
            .where(job_ticks.c.name == "ingest", job_ticks.c.tick >= started - 1000)
        ).scalar_one()
        figures.job_runs = connection.execute(
            select(func.count())
            .select_from(job_runs)
            .where(job_runs.c.name == "ingest", job_runs.c.started_at >= started)
        ).scalar_one()
    now = max(seen_server_times, default=fake.clock.now_ms())
    first, last = closed_window(now, DAYS)
    figures.tally = check_exact(setup, fake.market, first=first, last=last, exchange_now=now)
    for engine in [*engines, setup]:
        engine.dispose()
    return figures
