"""benchmarks.queue_scaling --failover: kill -9 of a `candlecast worker` while it trains, and of
a stream shard's lease holder, with the candles of that shard checked against the fake's."""

from __future__ import annotations

import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from sqlalchemy import select
from tests.fake_exchange.synthetic import synthetic_markets

from benchmarks.common import scratch_database
from benchmarks.many_pairs import CSV_5M, START_5M, summary
from benchmarks.many_pairs_session import load
from benchmarks.queue_scaling_parts import (
    Procs,
    cli,
    connections_by_name,
    db_now,
    environment,
    fake_now_ms,
    job_events,
    job_states,
    start_fake,
    symbols,
    tree_cpu,
    until,
    worker_pid,
    writes,
    writes_between,
)
from candlecast.config import Settings
from candlecast.domain import INTERVAL_MS
from candlecast.queue.client import QueueClient
from candlecast.store import db
from candlecast.store.leases import lease_owners
from candlecast.store.tables import candles
from candlecast.stream_leases import shard_of

if TYPE_CHECKING:
    from benchmarks.queue_scaling import Deployment

STEP = INTERVAL_MS["5m"]
STREAM_PAIRS = 8
SHARDS = 4
STREAM_SPEED = 60.0  # a 5m candle closes every 5 s


def worker_failover(d: Deployment, kills: int) -> dict[str, Any]:
    """Two default workers; a 90-day training killed mid-run `kills` times (a fresh worker
    replaces the dead one each time): the kill → the job's next `started` event."""
    orphans: list[psutil.Process] = []
    rounds: list[dict[str, Any]] = []
    pair = d.long_pairs[0] if d.long_pairs else d.pairs[0]
    workers = [d.procs.start(["worker"], ingest_every_seconds="10000000") for _ in range(2)]
    for process in workers:
        d.procs.wait_registered(process, 2)
    for _ in range(kills):
        time.sleep(3.0)
        job = d.client.defer("train", pair, force=True, days=90)
        assert job is not None
        until(
            lambda job=job: job_states(d.engine, [job])[job][0] == "doing",  # type: ignore[misc]
            60,
            "the training to start",
            every=0.05,
        )
        worker_id = job_states(d.engine, [job])[job][1]
        assert worker_id is not None
        pid = worker_pid(d.engine, worker_id)
        victim = next(p for p in workers if p.pid == pid)
        time.sleep(0.5)  # well inside the training (several seconds at 90 days)
        orphans += d.procs.kill(victim)
        killed_at = db_now(d.engine)
        time.sleep(3.0)  # a training child ends on its parent's death (PR_SET_PDEATHSIG)
        orphan_alive = [o.pid for o in orphans if _running(o)]

        def restarted(job: int = job, killed_at: float = killed_at) -> bool:
            return any(
                k == "started" and at > killed_at
                for k, at in job_events(d.engine, [job]).get(job, [])
            )

        until(restarted, 120, "the killed job to start again", every=0.1)
        events = job_events(d.engine, [job])[job]
        again = next(at for k, at in events if k == "started" and at > killed_at)
        until(
            lambda job=job: job_states(d.engine, [job])[job][0] in ("succeeded", "failed"),  # type: ignore[misc]
            300,
            "the retried job",
        )
        state, new_worker = job_states(d.engine, [job])[job]
        rounds.append(
            {
                "kill_to_started_s": round(again - killed_at, 2),
                "events": [k for k, _ in events],
                "final": state,
                "other_process": worker_pid(d.engine, new_worker or 0) != pid,
                "children_alive_3s_after_kill": len(orphan_alive),
                "load": load(),
            }
        )
        print(json.dumps(rounds[-1]), flush=True)
        workers = [p for p in workers if p is not victim]
        workers.append(d.procs.start(["worker"], ingest_every_seconds="10000000"))
        d.procs.wait_registered(workers[-1], 2)
    d.procs.stop()
    for orphan in orphans:
        if _running(orphan):
            orphan.kill()
    return {
        "rounds": rounds,
        "kill_to_started_s": summary([float(r["kill_to_started_s"]) for r in rounds], 2),
    }


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _holders(engine: Any) -> dict[int, str | None]:
    return lease_owners(engine, range(SHARDS))


def _pid_of(holder: str | None) -> int | None:
    return None if holder is None else int(holder.rsplit(":", 1)[1])


def check_candles(
    engine: Any, markets: dict[str, Any], chosen: list[Any], last: int
) -> dict[str, Any]:
    """Every candle of the pairs from their first stored one to `last`, against the fake's."""
    missing = wrong = total = 0
    for pair in chosen:
        market = markets[pair.symbol]
        with engine.connect() as connection:
            stored = {
                row.open_time: row
                for row in connection.execute(
                    select(candles).where(
                        candles.c.symbol == pair.symbol,
                        candles.c.interval == pair.interval,
                        candles.c.open_time <= last,
                    )
                )
            }
        first = min(stored)
        for open_time in range(first, last + 1, STEP):
            total += 1
            row = stored.get(open_time)
            if row is None:
                missing += 1
                continue
            truth = market.rows[market.index_at_or_after(open_time)]
            for name in ("open", "high", "low", "close", "volume"):
                if row._mapping[name] != Decimal(getattr(truth, name)):
                    wrong += 1
                    break
    return {
        "pairs": [str(p) for p in chosen],
        "candles_checked": total,
        "missing": missing,
        "wrong": wrong,
    }


def stream_failover(kills: int) -> dict[str, Any]:
    """Two streaming workers on 8 pairs (4 shards) at 60×; `kills` times the holder of a shard
    with pairs is killed and a fresh worker started; then every candle of the killed shards'
    pairs is checked. Periodic ingest is off, so the take-over (a REST catch-up the new owner
    defers) alone must fill what closed while nobody streamed."""
    folder = Path(tempfile.mkdtemp(prefix="queue-stream-"))
    result: dict[str, Any] = {"speed": STREAM_SPEED, "pairs": STREAM_PAIRS, "shards": SHARDS}
    with scratch_database("postgresql", folder) as url:
        fake, base_url = start_fake(CSV_5M, STREAM_PAIRS, START_5M, STREAM_SPEED)
        pairs = symbols(STREAM_PAIRS)
        env = environment(
            url,
            base_url,
            pairs,
            folder,
            backfill_days="7",
            train_days="7",
            stream="true",
            stream_shards=str(SHARDS),
            ingest_every_seconds="10000000",
        )
        engine = db.create_store_engine(url)
        procs = Procs(env, folder, engine)
        client = QueueClient(Settings(_env_file=None, database_url=url))
        try:
            cli(["backfill", "--pairs", "all", "--days", "7"], env, folder)
            workers = [procs.start(["worker"]) for _ in range(2)]
            for process in workers:
                procs.wait_registered(process, 2)
            trained = [client.defer("train", pair) for pair in pairs]
            ids = [i for i in trained if i is not None]
            until(
                lambda: all(s == "succeeded" for s, _ in job_states(engine, ids).values()),
                300,
                "first models",
            )

            def shared() -> bool:
                owners = _holders(engine)
                return None not in owners.values() and len(set(owners.values())) == 2

            until(shared, 60, "the shards shared by the two workers")
            result["steady"] = steady_stream(engine, workers, len(pairs))
            print(json.dumps(result["steady"]), flush=True)
            with_pairs = sorted({shard_of(p, SHARDS) for p in pairs})
            rounds: list[dict[str, Any]] = []
            victims: set[int] = set()
            for k in range(kills):
                shard = with_pairs[k % len(with_pairs)]
                victims.add(shard)
                holder = _pid_of(_holders(engine)[shard])
                victim = next(p for p in workers if p.pid == holder)
                started = time.monotonic()
                children = procs.kill(victim)
                until(
                    lambda shard=shard, holder=holder: (
                        _pid_of(_holders(engine)[shard])  # type: ignore[misc]
                        not in (None, holder)
                    ),
                    60,
                    "a new holder",
                    every=0.05,
                )
                took = time.monotonic() - started
                rounds.append({"shard": shard, "kill_to_held_s": round(took, 2), "load": load()})
                print(json.dumps(rounds[-1]), flush=True)
                for child in children:
                    if _running(child):
                        child.kill()
                workers = [p for p in workers if p is not victim]
                workers.append(procs.start(["worker"]))
                procs.wait_registered(workers[-1], 2)
                until(shared, 60, "the shards shared again")
                time.sleep(5.0)
            time.sleep(20.0)  # four more closes, and the take-overs' catch-up ingests
            last = (fake_now_ms(base_url) // STEP - 2) * STEP
            markets = {m.symbol: m for m in synthetic_markets(CSV_5M, STREAM_PAIRS)}
            chosen = [p for p in pairs if shard_of(p, SHARDS) in victims]
            result["rounds"] = rounds
            result["kill_to_held_s"] = summary([float(r["kill_to_held_s"]) for r in rounds], 2)
            result["candles"] = check_candles(engine, markets, chosen, last)
            result["candles_all_pairs"] = check_candles(engine, markets, pairs, last)
        finally:
            client.close()
            procs.stop()
            engine.dispose()
            fake.terminate()
            fake.wait(timeout=10)
            print(f"# logs: {folder}", flush=True)
    return result


def steady_stream(
    engine: Any, workers: list[Any], pair_count: int, seconds: float = 40.0
) -> dict[str, Any]:
    """Two streaming workers with models for every pair: rows written and CPU per candle close
    per pair, and one streaming worker's connections."""
    trees = [psutil.Process(p.pid) for p in workers]
    before_rows, before_cpu = writes(engine), sum(tree_cpu(t) for t in trees)
    started = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - started
    cpu = sum(tree_cpu(t) for t in trees) - before_cpu
    # Both readings lag alike (backends report when idle), so the window's rows are their
    # difference.
    rows = writes_between(before_rows, writes(engine))
    connections = connections_by_name(engine, workers[0].pid, trees[0])
    closes = took * STREAM_SPEED * 1000 / STEP
    return {
        "seconds": round(took, 1),
        "closes_per_pair": round(closes, 1),
        "rows_by_table": rows,
        "rows_per_close_per_pair": round(sum(rows.values()) / closes / pair_count, 1),
        "cpu_s_per_s_two_workers": round(cpu / took, 3),
        "cpu_s_per_close_per_pair": round(cpu / closes / pair_count, 4),
        "connections_streaming_worker": connections,
        "load": load(),
    }
