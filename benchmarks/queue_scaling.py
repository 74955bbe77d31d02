"""Scale-out on the task queue (issue 10's targets), on PostgreSQL, each part by a flag:

--scaling   N pairs (default 100) with 7 days of stored 5m candles; `candlecast.train` deferred
            for all of them with QueueClient to 1, then 2 idle `candlecast worker --queues
            train` processes (CANDLECAST_TRAIN_WORKERS=1 each, no stream, no periodic training):
            wall time from the first `deferred` event to the last `succeeded` one (database
            clock), alternating 1 and 2 workers for --runs rounds; CPU per training.
--overhead  `candlecast.forecast` deferred one every --spacing s to 2 idle `--queues sync`
            workers: `deferred` → `started` per job from procrastinate_events, p50/p95/max; CPU
            and rows written per forecast; the same for one round of `candlecast.ingest`.
--failover  kill -9 of the worker running a 90-day `candlecast.train`: the kill → the job's
            next `started` on the other worker. Streams: kill -9 of a shard's lease holder →
            another process holds it; then every candle of that shard's pairs, compared with
            the fake's (benchmarks.queue_scaling_failover).
--costs     a 90-day training's CPU; connections of one `candlecast worker` and one `serve`.

The fake exchange (benchmarks.many_pairs_fake, its own process) serves the synthetic markets
SYN001USDT..; candles are stored by `candlecast backfill --pairs all --days 7` (90 days for
the first --long-pairs pairs), on a fresh schema of --database-url's PostgreSQL.

Run: python -m benchmarks.queue_scaling --scaling --overhead --failover --costs [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import benchmarks.common as common
from benchmarks.common import machine, scratch_database
from benchmarks.many_pairs import CSV_5M, START_5M, summary
from benchmarks.many_pairs_session import load
from benchmarks.queue_scaling_parts import (
    Procs,
    cli,
    connections_by_name,
    environment,
    job_events,
    job_states,
    jobs_per_worker,
    postgres_sockets,
    start_fake,
    symbols,
    tree_cpu,
    until,
    writes,
    writes_between,
)
from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.queue.client import QueueClient
from candlecast.store import db

# pg_stat_user_tables lags: a backend reports its counts when idle, within about 10 s.
STATS_SETTLE_S = 11.0


@dataclass
class Deployment:
    """The fake, a migrated schema with the pairs' candles, and the processes started on it."""

    url: str
    base_url: str
    pairs: list[Pair]
    long_pairs: list[Pair]
    procs: Procs
    client: QueueClient
    backfill_s: float

    @property
    def engine(self) -> Any:
        return self.procs.engine


@contextmanager
def deployment(count: int, long_pairs: int, speed: float = 1.0) -> Iterator[Deployment]:
    """`count` followed pairs with 7 days of candles (90 for the first `long_pairs`)."""
    folder = Path(tempfile.mkdtemp(prefix="queue-scaling-"))
    with scratch_database("postgresql", folder) as url:
        fake, base_url = start_fake(CSV_5M, count, START_5M, speed)
        pairs = symbols(count)
        env = environment(url, base_url, pairs, folder, backfill_days="7", train_days="7")
        engine = db.create_store_engine(url)
        procs = Procs(env, folder, engine)
        client = QueueClient(Settings(_env_file=None, database_url=url))
        try:
            took = cli(["backfill", "--pairs", "all", "--days", "7"], env, folder)
            longer = pairs[:long_pairs]
            if longer:
                cli(
                    ["backfill", "--pairs", ",".join(map(str, longer)), "--days", "90"], env, folder
                )
            yield Deployment(url, base_url, pairs, longer, procs, client, round(took, 1))
        finally:
            client.close()
            procs.stop()
            engine.dispose()
            fake.terminate()
            fake.wait(timeout=10)
            print(f"# logs: {folder}", flush=True)


def wait_jobs(d: Deployment, ids: list[int], timeout: float, sample: Any = None) -> dict[str, int]:
    """Waits until every job has finished; counts of their final statuses."""
    final = {"succeeded", "failed", "cancelled", "aborted"}

    def done() -> bool:
        if sample is not None:
            sample()
        states = job_states(d.engine, ids)
        return all(states.get(i, ("todo", None))[0] in final for i in ids)

    until(done, timeout, f"{len(ids)} jobs", every=0.5)
    counts: dict[str, int] = {}
    for status, _ in job_states(d.engine, ids).values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def span(events: dict[int, list[tuple[str, float]]], start: str, end: str) -> float:
    """From the first `start` event of the jobs to the last `end` event, in s."""
    firsts = [at for evs in events.values() for kind, at in evs if kind == start]
    lasts = [at for evs in events.values() for kind, at in evs if kind == end]
    return max(lasts) - min(firsts)


def per_job(events: dict[int, list[tuple[str, float]]], start: str, end: str) -> list[float]:
    """Seconds from each job's first `start` event to its first `end` event after it."""
    out = []
    for evs in events.values():
        began = next((at for kind, at in evs if kind == start), None)
        ended = next(
            (at for kind, at in evs if kind == end and began is not None and at >= began), None
        )
        if began is not None and ended is not None:
            out.append(ended - began)
    return out


def unpaired(events: dict[int, list[tuple[str, float]]], start: str, end: str) -> list[Any]:
    """Up to 3 jobs per_job leaves out, with their events (ms after the first), to look at."""
    left = []
    for job, evs in events.items():
        began = next((at for kind, at in evs if kind == start), None)
        if began is None or not any(k == end and at >= began for k, at in evs):
            left.append([job, [(k, round((at - evs[0][1]) * 1000, 1)) for k, at in evs]])
    return left[:3]


def train_round(
    d: Deployment, workers: int, *, days: int | None = None, pairs: list[Pair] | None = None
) -> dict[str, Any]:
    """`candlecast.train` (force) for the pairs, run by `workers` fresh train-only workers."""
    chosen = pairs or d.pairs
    processes = [d.procs.start(["worker", "--queues", "train"]) for _ in range(workers)]
    for process in processes:
        d.procs.wait_registered(process, 1)
    trees = [psutil.Process(p.pid) for p in processes]
    time.sleep(3.0)  # the training children warm up in the background
    sockets: list[int] = []
    before_cpu, before_rows = sum(tree_cpu(t) for t in trees), writes(d.engine)
    load_before = load()
    extra: dict[str, Any] = {} if days is None else {"days": days}
    ids = [d.client.defer("train", pair, force=True, **extra) for pair in chosen]
    queued = [i for i in ids if i is not None]
    statuses = wait_jobs(
        d, queued, 1800, sample=lambda: sockets.append(sum(postgres_sockets(t) for t in trees))
    )
    cpu = sum(tree_cpu(t) for t in trees) - before_cpu
    events = job_events(d.engine, queued)
    # Before the workers stop: a stopping worker's row goes, and its jobs' worker_id with it.
    spread = jobs_per_worker(d.engine, queued)
    d.procs.stop()
    time.sleep(STATS_SETTLE_S)
    rows = writes_between(before_rows, writes(d.engine))
    return {
        "workers": workers,
        "jobs": len(queued),
        "statuses": statuses,
        "wall_s": round(span(events, "deferred", "succeeded"), 2),
        "training_s": summary(per_job(events, "started", "succeeded"), 2),
        "jobs_per_worker": spread,
        "cpu_s": round(cpu, 1),
        "cpu_s_per_training": round(cpu / max(1, len(queued)), 3),
        "rows_written_per_training": round(sum(rows.values()) / max(1, len(queued)), 1),
        "rows_by_table": rows,
        "postgres_sockets_max": max(sockets, default=0),
        "load_before": load_before,
        "load_after": load(),
    }


def scaling(d: Deployment, runs: int) -> dict[str, Any]:
    """Rounds of 1 then 2 workers (alternating, so both see the same machine); the ratio of the
    medians."""
    rounds: list[dict[str, Any]] = []
    for index in range(runs):
        for workers in (1, 2) if index % 2 == 0 else (2, 1):
            rounds.append(train_round(d, workers))
            print(
                json.dumps({k: v for k, v in rounds[-1].items() if k != "rows_by_table"}),
                flush=True,
            )
    one = [r["wall_s"] for r in rounds if r["workers"] == 1]
    two = [r["wall_s"] for r in rounds if r["workers"] == 2]
    return {
        "rounds": rounds,
        "median_wall_s": {"1": statistics.median(one), "2": statistics.median(two)},
        "ratio_2_to_1": round(statistics.median(two) / statistics.median(one), 3),
    }


def idle_cpu_per_s(trees: list[psutil.Process], seconds: float) -> float:
    """CPU seconds per second of idle workers (heartbeats, polling, periodic tasks)."""
    before = sum(tree_cpu(t) for t in trees)
    time.sleep(seconds)
    return (sum(tree_cpu(t) for t in trees) - before) / seconds


def sync_batch(
    d: Deployment,
    trees: list[psutil.Process],
    operation: str,
    spacing: float,
    count: int,
    idle: float,
) -> dict[str, Any]:
    """`count` deferrals of one operation over the pairs, `spacing` s apart, to sync workers."""
    before_cpu, before_rows = sum(tree_cpu(t) for t in trees), writes(d.engine)
    started = time.monotonic()
    ids: list[int] = []
    sockets: list[int] = []
    for k in range(count):
        job = d.client.defer(operation, d.pairs[k % len(d.pairs)])
        if job is not None:
            ids.append(job)
        time.sleep(max(0.0, started + (k + 1) * spacing - time.monotonic()))
    statuses = wait_jobs(
        d, ids, 600, sample=lambda: sockets.append(sum(postgres_sockets(t) for t in trees))
    )
    window = time.monotonic() - started
    cpu = sum(tree_cpu(t) for t in trees) - before_cpu - idle * window
    events = job_events(d.engine, ids)
    time.sleep(STATS_SETTLE_S)
    rows = writes_between(before_rows, writes(d.engine))
    # The workers' own periodic jobs (dispatch, retry_stalled) wrote too, meanwhile: counted.
    return {
        "operation": operation,
        "jobs": len(ids),
        "statuses": statuses,
        "spacing_s": spacing,
        "defer_to_start_ms": summary([s * 1000 for s in per_job(events, "deferred", "started")], 1),
        "unpaired_events": unpaired(events, "deferred", "started"),
        "run_ms": summary([s * 1000 for s in per_job(events, "started", "succeeded")], 1),
        "cpu_s_per_job": round(cpu / max(1, len(ids)), 4),
        "rows_written_per_job": round(sum(rows.values()) / max(1, len(ids)), 1),
        "rows_by_table": rows,
        "postgres_sockets_max": max(sockets, default=0),
        "load": load(),
    }


def overhead(d: Deployment, count: int, spacing: float) -> dict[str, Any]:
    """Queue overhead to idle sync workers (forecasts), and the cost of one ingest per pair."""
    processes = [
        d.procs.start(["worker", "--queues", "sync"], ingest_every_seconds="10000000")
        for _ in range(2)
    ]
    for process in processes:
        d.procs.wait_registered(process, 1)
    trees = [psutil.Process(p.pid) for p in processes]
    time.sleep(5.0)
    idle = idle_cpu_per_s(trees, 20.0)
    result: dict[str, Any] = {"idle_cpu_per_s_two_workers": round(idle, 4)}
    result["connections_idle_sync_worker"] = connections_by_name(
        d.engine, processes[0].pid, trees[0]
    )
    result["forecast"] = sync_batch(d, trees, "forecast", spacing, count, idle)
    print(json.dumps(result["forecast"]), flush=True)
    result["ingest"] = sync_batch(d, trees, "ingest", spacing, len(d.pairs), idle)
    print(json.dumps(result["ingest"]), flush=True)
    result["forecast_burst"] = sync_batch(d, trees, "forecast", 0.0, len(d.pairs), idle)
    print(json.dumps(result["forecast_burst"]), flush=True)
    d.procs.stop()
    return result


def costs(d: Deployment) -> dict[str, Any]:
    """A 90-day training's CPU (one worker, each long pair in turn), and the connections of an
    idle default `candlecast worker` and `candlecast serve` (no stream: see the failover part
    for a streaming worker)."""
    result: dict[str, Any] = {"train_90d": train_round(d, 1, days=90, pairs=d.long_pairs)}
    print(json.dumps(result["train_90d"]), flush=True)
    from tests.e2e.harness import free_port

    worker = d.procs.start(["worker"])
    serve = d.procs.start(["serve", "--port", str(free_port())])
    d.procs.wait_registered(worker, 2)
    d.procs.wait_registered(serve, 2)
    time.sleep(10.0)
    result["connections_idle"] = {
        "worker": connections_by_name(d.engine, worker.pid, psutil.Process(worker.pid)),
        "serve": connections_by_name(d.engine, serve.pid, psutil.Process(serve.pid)),
    }
    d.procs.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for part in ("scaling", "overhead", "failover", "costs"):
        parser.add_argument(f"--{part}", action="store_true")
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--long-pairs", type=int, default=3, help="pairs with 90 days")
    parser.add_argument("--runs", type=int, default=3, help="rounds of 1 and 2 workers")
    parser.add_argument("--jobs", type=int, default=200, help="forecasts for --overhead")
    parser.add_argument("--spacing", type=float, default=0.1)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--database-url", help="PostgreSQL [default: CANDLECAST_TEST_POSTGRES_URL]")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.database_url:
        common.POSTGRES_URL = args.database_url
    result: dict[str, Any] = {"machine": machine(), "load_at_start": load()}
    began = time.monotonic()
    if args.scaling or args.overhead or args.costs or args.failover:
        with deployment(args.pairs, args.long_pairs) as d:
            result["backfill_s"] = d.backfill_s
            if args.scaling:
                result["scaling"] = scaling(d, args.runs)
            if args.overhead:
                result["overhead"] = overhead(d, args.jobs, args.spacing)
            if args.costs:
                result["costs"] = costs(d)
            if args.failover:
                from benchmarks.queue_scaling_failover import worker_failover

                result["worker_failover"] = worker_failover(d, args.kills)
    if args.failover:
        from benchmarks.queue_scaling_failover import stream_failover

        result["stream_failover"] = stream_failover(args.kills)
    result["load_at_end"] = load()
    result["took_s"] = round(time.monotonic() - began, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
