"""PostgreSQL restarts during ingest and during an API request burst (a throwaway cluster).

Shared by tests/reliability/test_postgres_restart.py and benchmarks/reliability.py.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text

from candlecast.store import db
from tests.fake_exchange.server import FakeExchange
from tests.reliability.kill_scenarios import reset_candles, rewind_near_the_end
from tests.reliability.pg_cluster import ThrowawayPostgres
from tests.reliability.support import (
    DAY_MS,
    Tally,
    check_exact,
    cli,
    cli_environment,
    cli_log,
    closed_window,
    free_port,
    wait_for,
)

DAYS = 30


def fresh_database(pg: ThrowawayPostgres, name: str) -> str:
    """Creates an empty database on the throwaway cluster and returns its URL."""
    admin = db.create_store_engine(pg.url, pool=False).execution_options(
        isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg.url.rsplit("/", 1)[0] + f"/{name}"


def restart_during_ingest(
    pg: ThrowawayPostgres, fake: FakeExchange, url: str, folder: Path, rng: random.Random
) -> Tally:
    """Restarts PostgreSQL at a random moment of `candlecast ingest`: the run succeeds or fails
    with one clean error line, and the next run leaves the store exact."""
    env = cli_environment(url, fake.base_url, CANDLECAST_BACKFILL_DAYS=str(DAYS))
    if rewind_near_the_end(fake):
        engine = db.create_store_engine(url, pool=False)
        reset_candles(engine)
        engine.dispose()
        (folder / "cli.log").unlink(missing_ok=True)
        if cli(["backfill"], env, folder).wait(timeout=120) != 0:
            raise AssertionError(f"backfill after a rewind failed: {cli_log(folder)}")
    fake.clock.advance(rng.randint(1, 5) * DAY_MS)
    process = cli(["ingest"], env, folder)
    time.sleep(rng.uniform(0.2, 2.5))
    pg.restart(rng.choice(["fast", "immediate"]))
    code = process.wait(timeout=120)
    tally = Tally(iterations=1, faults=1)
    log = cli_log(folder, 4000)
    if code not in (0, 1) or "Traceback" in log:
        tally.wrong += 1
        tally.notes.append(f"ingest exited {code} uncleanly: {log[-600:]}")
    (folder / "cli.log").unlink(missing_ok=True)
    repair = cli(["ingest"], env, folder)
    if repair.wait(timeout=120) != 0:
        tally.wrong += 1
        tally.notes.append(f"the next ingest failed: {cli_log(folder)}")
    engine = db.create_store_engine(url, pool=False)
    try:
        now = fake.clock.now_ms()
        first, last = closed_window(now, DAYS)
        checked = check_exact(engine, fake.market, first=first, last=last, exchange_now=now)
    finally:
        engine.dispose()
    checked.iterations = 0
    tally.add(checked)
    return tally


@dataclass
class BurstFigures:
    """What the API answered while the database went away and came back."""

    statuses: Counter[str] = field(default_factory=Counter)
    down_statuses: Counter[str] = field(default_factory=Counter)
    recovered_after_s: float | None = None
    requests: int = 0


def _hammer(
    base: str, stop: threading.Event, log: list[tuple[float, str]], lock: threading.Lock
) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        while not stop.is_set():
            try:
                status = str(http.get("/api/candles", params={"limit": 50}).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            with lock:
                log.append((time.monotonic(), status))


def outage_during_burst(
    pg: ThrowawayPostgres, url: str, folder: Path, *, down_seconds: float = 3.0
) -> BurstFigures:
    """Stops PostgreSQL under a burst of reads and starts it again: the API answers 503 while
    it is down (never 500) and 200 again within seconds of its return, without a restart."""
    port = free_port()
    env = cli_environment(url, "http://127.0.0.1:9")
    server = cli(["serve", "--no-scheduler", "--port", str(port)], env, folder)
    base = f"http://127.0.0.1:{port}"
    figures = BurstFigures()
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/candles", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what=f"candlecast serve: {cli_log(folder)}")
        stop, lock = threading.Event(), threading.Lock()
        log: list[tuple[float, str]] = []
        workers = [
            threading.Thread(target=_hammer, args=(base, stop, log, lock), daemon=True)
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        pg.stop("immediate")
        went_down = time.monotonic()
        time.sleep(down_seconds)
        # Only answers to requests made well inside the outage count as "while down".
        down_window = (went_down + 0.5, time.monotonic())
        pg.start()
        came_back = time.monotonic()

        def answered_since_return() -> bool:
            with lock:
                return any(at >= came_back and status == "200" for at, status in log)

        # A timeout here shows as recovered_after_s None.
        with contextlib.suppress(AssertionError):
            wait_for(answered_since_return, timeout=20, what="a 200 after the database returned")
        time.sleep(1.0)
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures.requests = len(log)
    figures.statuses = Counter(status for _, status in log)
    figures.down_statuses = Counter(
        status for at, status in log if down_window[0] <= at <= down_window[1]
    )
    recovered = [at for at, status in log if at >= came_back and status == "200"]
    figures.recovered_after_s = (min(recovered) - came_back) if recovered else None
    return figures
