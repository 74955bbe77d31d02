"""One benchmark session for benchmarks.many_pairs: the fake exchange with N synthetic markets
(benchmarks.many_pairs_fake, its own process) and `candlecast serve` following them (its own
process), plus what the benchmark reads from outside: the database, the fake's counters and
clock, and the service's CPU time and memory (psutil, the training children separately)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import Engine, func, select
from tests.e2e.harness import free_port

from benchmarks.common import REPO
from candlecast.store import db
from candlecast.store.tables import forecasts, job_runs, pairs

TOKEN = "benchmark-token-0123456789"


def load() -> str:
    """The 1, 5 and 15 minute load averages, as one string."""
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


@dataclass
class Usage:
    """CPU seconds (user + system) and RSS of serve and of its children."""

    serve_cpu: float
    children_cpu: float
    serve_rss_mb: float
    children_rss_mb: float
    children: int

    @property
    def cpu(self) -> float:
        """serve and its children together."""
        return self.serve_cpu + self.children_cpu

    def view(self) -> dict[str, float]:
        """Rounded figures for the report."""
        return {
            "serve_rss_mb": round(self.serve_rss_mb, 1),
            "children_rss_mb": round(self.children_rss_mb, 1),
            "total_rss_mb": round(self.serve_rss_mb + self.children_rss_mb, 1),
            "children": self.children,
            "cpu_s": round(self.cpu, 1),
        }


@dataclass
class Session:
    """The fake and serve, both running; stop() ends them."""

    followed: list[str]
    url: str  # the database
    folder: Path
    fake: subprocess.Popen[str]
    base_url: str
    serve: subprocess.Popen[bytes]
    api: str
    engine: Engine
    launched: float  # time.monotonic() when serve was started
    peak_rss: dict[str, float] = field(default_factory=dict)
    # `candlecast worker` processes beside serve (PostgreSQL's queue mode), ended with it.
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def fake_stats(self) -> dict[str, Any]:
        """The fake's counters (many_pairs_fake.stats)."""
        assert self.fake.stdin is not None and self.fake.stdout is not None
        self.fake.stdin.write("stats\n")
        self.fake.stdin.flush()
        answer: dict[str, Any] = json.loads(self.fake.stdout.readline())
        return answer

    def clock(self) -> tuple[int, float, float]:
        """(exchange ms, host time.time() at that instant, speed), from the fake's clock."""
        before = time.time()
        view = httpx.get(f"{self.base_url}/_fake/clock", timeout=5).json()
        after = time.time()
        return int(view["now_ms"]), (before + after) / 2, float(view["speed"])

    def set_speed(self, speed: float) -> None:
        """Changes the fake's clock speed from now on (the exchange time does not jump)."""
        httpx.post(f"{self.base_url}/_fake/clock", json={"speed": speed}, timeout=5)

    def usage(self) -> Usage:
        """serve's and its live children's CPU time and RSS now; keeps the peaks seen."""
        parent = psutil.Process(self.serve.pid)
        with parent.oneshot():
            times = parent.cpu_times()
            serve_rss = parent.memory_info().rss / 2**20
        children_cpu = times.children_user + times.children_system
        children_rss = 0.0
        kids = parent.children(recursive=True)
        for child in kids:
            try:
                child_times = child.cpu_times()
                children_cpu += child_times.user + child_times.system
                children_rss += child.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                continue
        usage = Usage(times.user + times.system, children_cpu, serve_rss, children_rss, len(kids))
        for key, value in usage.view().items():
            if key.endswith("_mb"):
                self.peak_rss[key] = max(self.peak_rss.get(key, 0.0), value)
        return usage

    def progress(self) -> tuple[int, int, dict[str, int]]:
        """(pairs backfilled, pairs with a forecast in the ledger, forecasts per symbol)."""
        with self.engine.connect() as connection:
            backfilled = connection.execute(
                select(func.count()).where(
                    pairs.c.backfilled_at.is_not(None), pairs.c.removed_at.is_(None)
                )
            ).scalar_one()
            rows = connection.execute(
                select(forecasts.c.symbol, func.count()).group_by(forecasts.c.symbol)
            ).all()
        per_symbol = {str(symbol): int(count) for symbol, count in rows}
        return int(backfilled), len(per_symbol), per_symbol

    def made_at(self, targets: list[int]) -> dict[tuple[str, int], int]:
        """made_at (host ms) of each (symbol, target_open_time) forecast for these targets."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(forecasts.c.symbol, forecasts.c.target_open_time, forecasts.c.made_at).where(
                    forecasts.c.target_open_time.in_(targets)
                )
            ).all()
        return {(str(row[0]), int(row[1])): int(row[2]) for row in rows}

    def runs(self, name: str, since_ms: int = 0) -> list[tuple[str, str, int, int | None]]:
        """(symbol, status, started_at, finished_at) of job runs of one kind since a time."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    job_runs.c.symbol,
                    job_runs.c.status,
                    job_runs.c.started_at,
                    job_runs.c.finished_at,
                )
                .where(job_runs.c.name == name, job_runs.c.started_at >= since_ms)
                .order_by(job_runs.c.started_at)
            ).all()
        return [(str(r[0]), str(r[1]), int(r[2]), r[3]) for r in rows]

    def run_names(self) -> dict[str, int]:
        """How many job runs of each name exist."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(job_runs.c.name, func.count()).group_by(job_runs.c.name)
            ).all()
        return {str(name): int(count) for name, count in rows}

    def alive(self) -> bool:
        """Whether serve is still running."""
        return self.serve.poll() is None

    def stop(self) -> None:
        """Ends the workers and serve, then the fake."""
        self.engine.dispose()
        processes: list[subprocess.Popen[Any]] = [*self.workers, self.serve, self.fake]
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def start_session(
    *,
    csv: Path,
    count: int,
    interval: str,
    start: str,
    speed: float,
    url: str,
    folder: Path,
    extra_env: dict[str, str] | None = None,
    workers: int = 0,
) -> Session:
    """Starts the fake with `count` synthetic markets and serve following all of them, plus
    `workers` queue workers (PostgreSQL only) sharing the pairs' tasks and stream shards."""
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.many_pairs_fake",
            "--csv",
            str(csv),
            "--count",
            str(count),
            "--start",
            start,
            "--speed",
            str(speed),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert fake.stdout is not None
    base_url = fake.stdout.readline().strip()
    if not base_url.startswith("http"):
        fake.kill()
        raise RuntimeError("the fake exchange did not start")
    symbols = [f"SYN{i:03d}USDT:{interval}" for i in range(1, count + 1)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": url,
            "CANDLECAST_BINANCE_URL": base_url,
            "CANDLECAST_BINANCE_WS_URL": base_url.replace("http", "ws"),
            "CANDLECAST_PAIRS": ",".join(symbols),
            "CANDLECAST_API_TOKEN": TOKEN,
            "CANDLECAST_STATE_DIR": str(folder / "state"),
            **(extra_env or {}),
        }
    )
    port = free_port()
    log = (folder / "serve.log").open("wb")
    launched = time.monotonic()
    serve = subprocess.Popen(
        [sys.executable, "-m", "candlecast.cli", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started_workers = []
    for index in range(workers):
        worker_log = (folder / f"worker-{index}.log").open("wb")
        started_workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "candlecast.cli", "worker"],
                cwd=folder,
                env=env,
                stdout=worker_log,
                stderr=subprocess.STDOUT,
            )
        )
    engine = db.create_store_engine(url)
    return Session(
        followed=symbols,
        url=url,
        folder=folder,
        fake=fake,
        base_url=base_url,
        serve=serve,
        api=f"http://127.0.0.1:{port}",
        engine=engine,
        launched=launched,
        workers=started_workers,
    )
