"""What benchmarks.queue_scaling runs on: the fake exchange with N synthetic markets (as
benchmarks.many_pairs_fake, its own process), `candlecast worker` and `serve` processes on one
PostgreSQL schema, and what the benchmark reads from outside: procrastinate's events (database
clock), per-table write counters, process-tree CPU time and each process's connections."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import Engine, text

from benchmarks.common import REPO
from benchmarks.many_pairs_session import TOKEN
from candlecast.domain import Pair


def symbols(count: int, interval: str = "5m") -> list[Pair]:
    """SYN001USDT.. as the fake serves them."""
    return [Pair(f"SYN{i:03d}USDT", interval) for i in range(1, count + 1)]


def start_fake(
    csv: Path, count: int, start: str, speed: float
) -> tuple[subprocess.Popen[str], str]:
    """benchmarks.many_pairs_fake as its own process; (process, base URL)."""
    fake = subprocess.Popen(
        [
            *(sys.executable, "-m", "benchmarks.many_pairs_fake", "--csv", str(csv)),
            *("--count", str(count), "--start", start, "--speed", str(speed)),
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
    return fake, base_url


def fake_now_ms(base_url: str) -> int:
    """The fake exchange's clock."""
    return int(httpx.get(f"{base_url}/_fake/clock", timeout=5).json()["now_ms"])


def environment(
    url: str, base_url: str, pairs: list[Pair], folder: Path, **extra: str
) -> dict[str, str]:
    """A worker's environment: no stream, one training child, no periodic training unless
    `extra` says otherwise (CANDLECAST_ prefix added to its keys)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": url,
            "CANDLECAST_BINANCE_URL": base_url,
            "CANDLECAST_BINANCE_WS_URL": base_url.replace("http", "ws"),
            "CANDLECAST_PAIRS": ",".join(map(str, pairs)),
            "CANDLECAST_API_TOKEN": TOKEN,
            "CANDLECAST_STATE_DIR": str(folder / "state"),
            "CANDLECAST_STREAM": "false",
            "CANDLECAST_TRAIN_WORKERS": "1",
            # Far beyond any run: the dispatcher adds no training of its own.
            "CANDLECAST_TRAIN_EVERY_SECONDS": "10000000",
            "CANDLECAST_RECONCILE_EVERY_SECONDS": "10000000",
        }
    )
    env.update({f"CANDLECAST_{key.upper()}": value for key, value in extra.items()})
    return env


def cli(args: list[str], env: dict[str, str], folder: Path) -> float:
    """Runs one `candlecast` command to its end; its wall time in s."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "candlecast.cli", *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"candlecast {' '.join(args)} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def tree_cpu(process: psutil.Process) -> float:
    """CPU seconds (user + system) of a process, its reaped children and its live ones."""
    try:
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        kids = process.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for child in kids:
        try:
            child_times = child.cpu_times()
            total += child_times.user + child_times.system
        except psutil.NoSuchProcess:
            continue
    return total


def postgres_sockets(process: psutil.Process) -> int:
    """TCP connections to PostgreSQL (port 5432) of a process and its children."""
    count = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            count += sum(
                1
                for c in member.net_connections(kind="tcp")
                if c.raddr and c.raddr.port == 5432 and c.status == psutil.CONN_ESTABLISHED
            )
        except psutil.NoSuchProcess:
            continue
    return count


@dataclass
class Procs:
    """`candlecast worker`/`serve` processes of one deployment; stop() ends them all."""

    env: dict[str, str]
    folder: Path
    engine: Engine
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)
    launched: int = 0

    def start(self, args: list[str], **extra_env: str) -> subprocess.Popen[bytes]:
        """Starts `candlecast ARGS`, its output in a log file of the folder."""
        self.launched += 1
        log = (self.folder / f"{args[0]}-{self.launched}.log").open("wb")
        env = {**self.env, **{f"CANDLECAST_{k.upper()}": v for k, v in extra_env.items()}}
        process = subprocess.Popen(
            [sys.executable, "-m", "candlecast.cli", *args],
            cwd=self.folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append(process)
        return process

    def wait_registered(
        self, process: subprocess.Popen[bytes], workers: int, timeout: float = 90
    ) -> float:
        """Waits until the process's `workers` queue workers are registered; seconds taken."""
        started = time.monotonic()
        until(
            lambda: registered(self.engine, process.pid) >= workers,
            timeout,
            f"process {process.pid} registering its queue workers (see {self.folder})",
            alive=process,
        )
        return time.monotonic() - started

    def kill(self, process: subprocess.Popen[bytes]) -> list[psutil.Process]:
        """kill -9 of the process alone; returns its children (still running) for clean-up."""
        children = psutil.Process(process.pid).children(recursive=True)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        return children

    def stop(self) -> None:
        """SIGTERM to every process still running, then -9 for any left after 30 s."""
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.running.clear()


def until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    every: float = 0.2,
    alive: subprocess.Popen[bytes] | None = None,
) -> None:
    """Polls `condition` until true; raises after `timeout` s or if `alive` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"exited while waiting for {what}")
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def registered(engine: Engine, pid: int) -> int:
    """Live queue workers a process has registered."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM queue_worker_hosts h JOIN procrastinate_workers w "
                    "ON w.id = h.worker_id WHERE h.pid = :pid"
                ),
                {"pid": pid},
            ).scalar_one()
        )


def worker_pid(engine: Engine, worker_id: int) -> int | None:
    """The process (pid) running a procrastinate worker."""
    with engine.connect() as connection:
        pid = connection.execute(
            text("SELECT pid FROM queue_worker_hosts WHERE worker_id = :id"), {"id": worker_id}
        ).scalar_one_or_none()
    return None if pid is None else int(pid)


def job_states(engine: Engine, ids: Iterable[int]) -> dict[int, tuple[str, int | None]]:
    """(status, worker_id) of each job."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, status::text, worker_id FROM procrastinate_jobs WHERE id = ANY(:ids)"),
            {"ids": list(ids)},
        ).all()
    return {int(r[0]): (str(r[1]), None if r[2] is None else int(r[2])) for r in rows}


def jobs_per_worker(engine: Engine, ids: Iterable[int]) -> list[int]:
    """How many of the jobs each worker ran, fewest first (workers still registered)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(:ids) "
                "AND worker_id IS NOT NULL GROUP BY worker_id ORDER BY 1"
            ),
            {"ids": list(ids)},
        ).all()
    return [int(row[0]) for row in rows]


def job_events(engine: Engine, ids: Iterable[int]) -> dict[int, list[tuple[str, float]]]:
    """Each job's events in order: (type, epoch seconds on the database's clock)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT job_id, type::text, extract(epoch FROM at)::float8 "
                "FROM procrastinate_events WHERE job_id = ANY(:ids) ORDER BY at, id"
            ),
            {"ids": list(ids)},
        ).all()
    events: dict[int, list[tuple[str, float]]] = {}
    for job_id, kind, at in rows:
        events.setdefault(int(job_id), []).append((str(kind), float(at)))
    return events


def db_now(engine: Engine) -> float:
    """The database's clock, epoch seconds (clock_timestamp: not the transaction's start)."""
    with engine.connect() as connection:
        return float(
            connection.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
        )


def writes(engine: Engine) -> dict[str, int]:
    """Rows inserted, updated and deleted so far, per table of this schema."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema()"
            )
        ).all()
    return {str(name): int(count) for name, count in rows}


def writes_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Rows written per table between two readings, tables with none left out."""
    delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    return {name: count for name, count in sorted(delta.items()) if count}


def connections_by_name(engine: Engine, pid: int, process: psutil.Process) -> dict[str, Any]:
    """A process's PostgreSQL connections: its sockets to 5432, and the server's sessions from
    those sockets' ports by application_name (SQLAlchemy's sessions have none)."""
    ports = set()
    for member in [process, *process.children(recursive=True)]:
        try:
            ports |= {
                c.laddr.port
                for c in member.net_connections(kind="tcp")
                if c.raddr and c.raddr.port == 5432
            }
        except psutil.NoSuchProcess:
            continue
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT coalesce(nullif(application_name, ''), '(none)'), count(*) "
                "FROM pg_stat_activity WHERE client_port = ANY(:ports) GROUP BY 1 ORDER BY 1"
            ),
            {"ports": sorted(ports)},
        ).all()
    named = {str(name).replace(f":{pid}", ":<pid>"): int(n) for name, n in rows}
    return {"sockets": len(ports), "by_application_name": named}


def fetch_stats(fake: subprocess.Popen[str]) -> dict[str, Any]:
    """The fake's counters (many_pairs_fake's `stats` line)."""
    import json

    assert fake.stdin is not None and fake.stdout is not None
    fake.stdin.write("stats\n")
    fake.stdin.flush()
    answer: dict[str, Any] = json.loads(fake.stdout.readline())
    return answer
