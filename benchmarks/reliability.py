"""The long run of the reliability suite: every fault class, many iterations, one table.

    python -m benchmarks.reliability                      # the published run (≥ 200 kill -9)
    python -m benchmarks.reliability --kill-iterations 5 --fault-iterations 1   # a quick look

It runs the same scenarios as tests/reliability (which CI runs a few times each), against the
fake exchange replaying real candles, and prints a Markdown table: per fault class and
database, the iterations, faults injected, candles checked, and lost / duplicated / partial /
wrong counts (the targets are all 0), plus each class's own figure.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fake_exchange.server import FakeExchange
from tests.reliability import (
    concurrency_scenarios,
    exchange_scenarios,
    kill_scenarios,
    pg_scenarios,
)
from tests.reliability.pg_cluster import ThrowawayPostgres, unavailable_reason
from tests.reliability.support import Tally
from tests.shared_data import MAIN_CSV

from benchmarks.common import SHARED_DATA, machine, scratch_database
from candlecast.domain import parse_iso_utc
from candlecast.jobs import sync
from candlecast.store import db

START = "2025-09-20T12:02:30Z"


@dataclass
class Row:
    """One line of the table."""

    section: str
    fault: str
    database: str
    tally: Tally = field(default_factory=Tally)
    figure: str = ""
    seconds: float = 0.0


@contextmanager
def fake_exchange(**options: Any) -> Iterator[FakeExchange]:
    """The fake exchange in this process, replaying the main real-candle CSV."""
    fake = FakeExchange(
        csv_path=SHARED_DATA / MAIN_CSV, start_ms=parse_iso_utc(START), **options
    ).start()
    try:
        yield fake
    finally:
        fake.stop()


@contextmanager
def database(kind: str, folder: Path) -> Iterator[tuple[str, Any]]:
    """A migrated scratch database (URL, engine)."""
    with scratch_database(kind, folder) as url:
        engine = db.create_store_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()


def _vary(faults: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The same fault class at a random frequency (every 2nd to 5th request)."""
    varied = dict(faults)
    for key, value in faults.items():
        if key.startswith("every_") and isinstance(value, int) and value > 0:
            varied[key] = rng.randint(2, 5)
    return varied


def rest_faults(rows: list[Row], kinds: list[str], n: int, rng: random.Random) -> None:
    for fault, config in exchange_scenarios.REST_FAULTS.items():
        for kind in kinds:
            row = Row("exchange (REST)", fault, kind)
            for _ in range(n):
                with (
                    tempfile.TemporaryDirectory() as folder,
                    database(kind, Path(folder)) as (_, engine),
                    fake_exchange() as fake,
                ):
                    row.tally.add(
                        exchange_scenarios.rest_fault_run(engine, fake, _vary(config, rng))
                    )
            row.figure = "backfill 20 d + ingest 2 d per iteration"
            rows.append(row)


def weight_budget(rows: list[Row], n: int) -> None:
    row = Row("exchange (REST)", "429 then weight budget", "sqlite")
    worst, gaps = 0, []
    for _ in range(n):
        with (
            tempfile.TemporaryDirectory() as folder,
            database("sqlite", Path(folder)) as (_, engine),
            fake_exchange() as fake,
        ):
            tally, figures = exchange_scenarios.weight_budget_run(engine, fake, budget=20)
        row.tally.add(tally)
        worst = max(worst, figures["max_weight_per_minute"])
        gaps.append(figures["first_gap_after_429_s"] or 0.0)
        if figures["rate_limited"] != 1:
            row.tally.wrong += 1
            row.tally.notes.append(f"429s seen: {figures['rate_limited']}")
    row.figure = (
        f"max weight/min {worst} (budget 20); first request after the 429: "
        f"{min(gaps):.1f} s later (Retry-After 5)"
    )
    rows.append(row)


def ban(rows: list[Row], n: int) -> None:
    row = Row("exchange (REST)", "418 ban, then a restart", "sqlite")
    leaked = 0
    for _ in range(n):
        with (
            tempfile.TemporaryDirectory() as folder,
            database("sqlite", Path(folder)) as (url, engine),
        ):
            with fake_exchange() as fake:
                tally, figures = exchange_scenarios.ban_run(
                    engine, url, fake, Path(folder), ban_seconds=12
                )
        leaked += figures["requests_while_banned"]
        ok = (
            figures["restarted_cli_exit"] == 1
            and figures["restarted_cli_said_banned"]
            and figures["after_ban_exit"] == 0
        )
        if not ok or figures["requests_while_banned"]:
            tally.wrong += 1
            tally.notes.append(str(figures))
        row.tally.add(tally)
    row.figure = f"requests sent while banned (new client, new process): {leaked}"
    rows.append(row)


def stream_faults(rows: list[Row], kinds: list[str], n: int) -> None:
    for fault, config in exchange_scenarios.STREAM_FAULTS.items():
        for kind in kinds:
            row = Row("exchange (stream)", fault, kind)
            for _ in range(n):
                with (
                    tempfile.TemporaryDirectory() as folder,
                    database(kind, Path(folder)) as (url, engine),
                    fake_exchange(speed=600, ws_update_ms=40) as fake,
                ):
                    settings = exchange_scenarios.reliability_settings(url, fake.base_url)
                    row.tally.add(
                        exchange_scenarios.stream_fault_run(
                            engine, fake, settings, config, closes=8
                        )
                    )
            row.figure = "1 d backfill, then 8 candles over the stream per iteration"
            rows.append(row)


def kills(rows: list[Row], kinds: list[str], per_phase: dict[str, int], rng: random.Random) -> None:
    for phase in kill_scenarios.PHASES:
        for kind in kinds:
            runs = per_phase[kind]
            row = Row("kill -9", phase, kind)
            with (
                tempfile.TemporaryDirectory() as folder,
                database(kind, Path(folder)) as (url, engine),
                fake_exchange() as fake,
            ):
                fake.clock.set(speed=0)
                rig = kill_scenarios.KillRig(url, engine, fake, Path(folder), rng, train_days=20)
                for _ in range(runs):
                    row.tally.add(kill_scenarios.SCENARIOS[phase](rig))
            killed = row.tally.faults
            row.figure = f"{killed} of {runs} kills landed mid-run"
            if phase == "train":
                row.figure += "; the champion loaded after every kill"
            rows.append(row)
            print(f"  kill -9 {phase} ({kind}): {row.tally}", flush=True)


def postgres_restarts(rows: list[Row], n_ingest: int, n_burst: int, rng: random.Random) -> None:
    reason = unavailable_reason()
    if reason is not None:
        print(f"skipping PostgreSQL restarts: {reason}")
        return
    with ThrowawayPostgres() as pg, tempfile.TemporaryDirectory() as folder:
        row = Row("PostgreSQL restart", "during ingest", "postgresql")
        with fake_exchange() as fake:
            fake.clock.set(speed=0)
            url = pg_scenarios.fresh_database(pg, "bench_ingest")
            engine = db.create_store_engine(url, pool=False)
            db.upgrade(engine)
            with exchange_scenarios.fast_client(fake.base_url) as client:
                sync.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=30)
            engine.dispose()
            for _ in range(n_ingest):
                row.tally.add(pg_scenarios.restart_during_ingest(pg, fake, url, Path(folder), rng))
        row.figure = "restart (fast or immediate) at a random moment; next run repairs"
        rows.append(row)

        burst = Row("PostgreSQL restart", "down under a read burst", "postgresql")
        statuses: dict[str, int] = {}
        recoveries: list[float] = []
        for i in range(n_burst):
            url = pg_scenarios.fresh_database(pg, f"bench_burst_{i}")
            figures = pg_scenarios.outage_during_burst(pg, url, Path(folder), down_seconds=3.0)
            burst.tally.iterations += 1
            burst.tally.faults += 1
            for status, count in figures.down_statuses.items():
                statuses[status] = statuses.get(status, 0) + count
            if figures.recovered_after_s is None or "500" in figures.statuses:
                burst.tally.wrong += 1
                burst.tally.notes.append(str(figures))
            else:
                recoveries.append(figures.recovered_after_s)
        worst = f"{max(recoveries):.2f} s" if recoveries else "never"
        burst.figure = f"answers while down: {statuses}; back to 200 within {worst}"
        rows.append(burst)


def concurrency(rows: list[Row], kinds: list[str], n: int) -> None:
    row = Row("concurrency", "readers + CLI writers beside serve", "sqlite")
    locked = 0
    reads = 0
    for _ in range(n):
        with tempfile.TemporaryDirectory() as folder, fake_exchange(speed=60) as fake:
            figures = concurrency_scenarios.sqlite_writers_beside_serve(
                fake, Path(folder), cli_train=True
            )
        figures.tally.iterations = 1
        row.tally.add(figures.tally)
        locked += figures.locked
        reads += sum(figures.reads.values())
        bad = {k: v for k, v in figures.reads.items() if not k.endswith((" 200", " 503"))}
        if bad or set(figures.writer_exits.values()) != {0}:
            row.tally.wrong += 1
            row.tally.notes.append(f"{bad} {figures.writer_exits}")
    row.figure = f"{reads} reads, 'database is locked': {locked}"
    rows.append(row)
    if "postgresql" not in kinds:
        return
    replicas = Row("concurrency", "4 schedulers on one PostgreSQL", "postgresql")
    runs = claimed = 0
    for _ in range(n):
        with tempfile.TemporaryDirectory() as folder, fake_exchange(speed=60) as fake:
            with scratch_database("postgresql", Path(folder)) as url:
                figures_r = concurrency_scenarios.replicas_on_postgres(url, fake, seconds=8.0)
        figures_r.tally.iterations = 1
        replicas.tally.add(figures_r.tally)
        runs += figures_r.runs
        claimed += figures_r.claimed
        if figures_r.runs != figures_r.job_runs or figures_r.runs > 10:
            replicas.tally.wrong += 1
            replicas.tally.notes.append(str(figures_r))
    replicas.figure = f"{runs} job runs for {claimed} ticks claimed (8 s of 1 s ticks per run)"
    rows.append(replicas)


def table(rows: list[Row]) -> str:
    """The Markdown table for docs/reliability.md."""
    lines = [
        "| fault class | fault | database | iterations | faults injected | candles checked "
        "| lost | duplicated | partial | wrong | figure |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t = r.tally
        lines.append(
            f"| {r.section} | {r.fault} | {r.database} | {t.iterations} | {t.faults} | "
            f"{t.checked:,} | {t.lost} | {t.duplicated} | {t.partial} | {t.wrong} | {r.figure} |"
        )
    total = Tally()
    for r in rows:
        total.add(r.tally)
    kill_total = sum(r.tally.iterations for r in rows if r.section == "kill -9")
    lines.append(
        f"| **all** | | | **{total.iterations}** | **{total.faults}** | **{total.checked:,}** | "
        f"**{total.lost}** | **{total.duplicated}** | **{total.partial}** | **{total.wrong}** | "
        f"{kill_total} kill -9 iterations |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__)
    parser.add_argument("--kill-iterations", type=int, default=50, help="per phase, SQLite")
    parser.add_argument("--kill-iterations-postgres", type=int, default=5, help="per phase")
    parser.add_argument("--fault-iterations", type=int, default=3, help="per fault and database")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--only", default="", help="sections: rest,budget,ban,stream,kill,postgres,concurrency"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    kinds = [k for k in args.databases.split(",") if k]
    only = {s for s in args.only.split(",") if s}
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    n = args.fault_iterations
    sections: dict[str, Callable[[list[Row]], None]] = {
        "kill": lambda rows: kills(
            rows,
            kinds,
            {"sqlite": args.kill_iterations, "postgresql": args.kill_iterations_postgres},
            rng,
        ),
        "rest": lambda rows: rest_faults(rows, kinds, n, rng),
        "budget": lambda rows: weight_budget(rows, max(1, n // 2)),
        "ban": lambda rows: ban(rows, max(1, n // 2)),
        "stream": lambda rows: stream_faults(rows, kinds, max(1, n // 2)),
        "postgres": lambda rows: postgres_restarts(rows, 2 * n, max(1, n // 2), rng),
        "concurrency": lambda rows: concurrency(rows, kinds, max(1, n // 3)),
    }
    started = time.monotonic()
    rows: list[Row] = []
    for name, run in sections.items():
        if only and name not in only:
            continue
        before = len(rows)
        began = time.monotonic()
        run(rows)
        for row in rows[before:]:
            row.seconds = (time.monotonic() - began) / max(1, len(rows) - before)
        print(f"{name}: done in {time.monotonic() - began:.0f} s", flush=True)
        for row in rows[before:]:
            print(f"  {row.fault} ({row.database}): {row.tally}", flush=True)
    elapsed = time.monotonic() - started
    print()
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print(f"date: {stamp}; machine: {machine()}; seed {seed}; {elapsed / 60:.1f} min")
    print()
    print(table(rows))
    for row in rows:
        for note in row.tally.notes[:3]:
            print(f"note ({row.fault}, {row.database}): {note}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "section": r.section,
                        "fault": r.fault,
                        "database": r.database,
                        "iterations": r.tally.iterations,
                        "faults": r.tally.faults,
                        "checked": r.tally.checked,
                        "lost": r.tally.lost,
                        "duplicated": r.tally.duplicated,
                        "partial": r.tally.partial,
                        "wrong": r.tally.wrong,
                        "figure": r.figure,
                        "notes": r.tally.notes[:5],
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
    failed = sum(not r.tally.exact for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
