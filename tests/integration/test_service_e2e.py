"""`candlecast serve` / `worker` as real processes against the fake exchange at 60x speed.

A 5m candle closes every 5 s of real time. These tests take about a minute or two each, and run
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import Engine, func, select

from candlecast.store import registry
from candlecast.store.tables import candles, forecasts, job_runs, models
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory

STEP = 300_000
SPEED = 60.0
START = "2025-09-20T12:02:30Z"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _environment(database_url: str, fake: Any, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": database_url,
            "CANDLECAST_BINANCE_URL": fake.base_url,
            "CANDLECAST_BINANCE_WS_URL": fake.ws_url,
            "CANDLECAST_BACKFILL_DAYS": "30",
            "CANDLECAST_TRAIN_DAYS": "30",
            "CANDLECAST_INGEST_EVERY_SECONDS": "15",
            "CANDLECAST_TRAIN_EVERY_SECONDS": "30",
            "CANDLECAST_RECONCILE_EVERY_SECONDS": "600",
            "CANDLECAST_HTTP_MAX_RETRIES": "3",
            "CANDLECAST_API_TOKEN": "e2e-token-0123456789abcdef",
            **extra,
        }
    )
    return env


class Processes:
    """Started candlecast processes; each is stopped (and checked) at the end of the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []
        # How much of each log an assertion message shows.
        self.tail = 4000

    def start(
        self, args: list[str], env: dict[str, str], *, prefix: list[str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Starts `candlecast ARGS`, after `prefix` (e.g. `ip netns exec NAME`) when given."""
        log = (self.tmp_path / f"proc-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "candlecast.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp_path,
        )
        self.started.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-self.tail :]
            for path in sorted(self.tmp_path.glob("proc-*.log"))
        )


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    for process in started.started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started.started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _count(engine: Engine, query: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _ready(engine: Engine) -> bool:
    champion = _count(
        engine,
        select(func.count()).select_from(models).where(models.c.status == registry.CHAMPION),
    )
    return champion > 0 and _count(engine, select(func.count()).select_from(forecasts)) > 0


def test_serve_backfills_trains_forecasts_and_follows_the_stream(
    engine: Engine,
    database_url: str,
    fake_exchange: FakeExchangeFactory,
    processes: Processes,
) -> None:
    fake = fake_exchange(MAIN_CSV, start=START, speed=SPEED, ws_update_ms=100)
    port = _free_port()
    processes.start(["serve", "--port", str(port)], _environment(database_url, fake))
    started = time.monotonic()
    _wait_for(lambda: _ready(engine), timeout=150, what="backfill, training and a forecast")
    ready_after = time.monotonic() - started
    first_target = _first_forecast_target(engine)

    # Cut the stream mid-candle once while watching: nothing may be lost.
    time.sleep(12)
    fake.drop_websockets()
    time.sleep(48)
    observed_until = fake.clock.now_ms()
    time.sleep(6)  # let the last candle of the window be processed

    health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
    assert health.status_code in (200, 503), health.text
    last_closed = (observed_until - STEP) // STEP * STEP
    with engine.connect() as connection:
        stored = set(
            connection.execute(
                select(candles.c.open_time).where(
                    candles.c.open_time.between(first_target, last_closed)
                )
            ).scalars()
        )
        ledger_rows = connection.execute(
            select(
                forecasts.c.target_open_time,
                forecasts.c.made_at_exchange,
                forecasts.c.real_close,
                forecasts.c.scored_at,
            ).where(forecasts.c.target_open_time.between(first_target, last_closed))
        ).all()
    expected = set(range(first_target, last_closed + 1, STEP))
    assert len(expected) >= 10, "the observation window is too short"
    assert stored == expected, (sorted(expected - stored), processes.logs())
    targets = [row.target_open_time for row in ledger_rows]
    assert sorted(targets) == sorted(expected), processes.logs()
    for row in ledger_rows:
        assert row.made_at_exchange is not None
        assert row.made_at_exchange <= row.target_open_time + STEP - 1
        assert row.scored_at is not None and row.real_close is not None
    assert ready_after < 60


def _first_forecast_target(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.min(forecasts.c.target_open_time))).scalar_one())


def test_sigterm_during_training_keeps_the_champion_and_leaves_no_process(
    engine: Engine,
    database_url: str,
    fake_exchange: FakeExchangeFactory,
    processes: Processes,
) -> None:
    fake = fake_exchange(MAIN_CSV, start=START, speed=SPEED, ws_update_ms=100)
    env = _environment(database_url, fake, CANDLECAST_TRAIN_EVERY_SECONDS="5")
    worker = processes.start(["worker"], env)
    _wait_for(lambda: _ready(engine), timeout=150, what="the first model")
    with engine.connect() as connection:
        champion = registry.champion(connection, symbol="BTCUSDT", interval="5m")
    assert champion is not None
    parent = psutil.Process(worker.pid)

    def training_child() -> bool:
        return any("multiprocessing" in " ".join(c.cmdline()) for c in parent.children())

    _wait_for(training_child, timeout=30, what="a training child process")
    family = [parent, *parent.children(recursive=True)]
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    _, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, [p.pid for p in alive]
    with engine.connect() as connection:
        still = registry.champion(connection, symbol="BTCUSDT", interval="5m")
        running = connection.execute(
            select(func.count()).select_from(job_runs).where(job_runs.c.status == "running")
        ).scalar_one()
    assert still is not None
    if still.id != champion.id:  # a training that finished before SIGTERM may have promoted
        assert still.created_at > champion.created_at
    assert running == 0, processes.logs()
