"""`candlecast download` from a local dump server, as a whole process, start-up included.

The fake exchange (its own process) serves data.binance.vision-style dumps built from the real
1m fixture. Each run downloads BTCUSDT 1m for June and July 2025 (87,840 candles, two monthly
files) into a database the command has never seen: a new SQLite file, which the command
migrates, or a fresh migrated PostgreSQL schema. Every run then checks the stored candles
against the fixture, field by field.

Run: python -m benchmarks.download [--runs 5] [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from benchmarks.common import SHARED_DATA, machine, median, scratch_database
from candlecast.domain import parse_iso_utc
from candlecast.store import db

CSV = "btcusdt-1m-2025-05-20_2025-08-18.csv"
Row = tuple[int, str, str, str, str, str]
COMMAND = ["download", "BTCUSDT", "--interval", "1m", "--start", "2025-06", "--end", "2025-07"]
FIRST, END = parse_iso_utc("2025-06-01T00:00:00Z"), parse_iso_utc("2025-08-01T00:00:00Z")


def expected_rows() -> list[Row]:
    """The fixture's candles for June and July 2025."""
    with (SHARED_DATA / CSV).open(newline="") as handle:
        rows = [
            (parse_iso_utc(r["open_time"]), r["open"], r["high"], r["low"], r["close"], r["volume"])
            for r in csv.DictReader(handle)
        ]
    return [row for row in rows if FIRST <= row[0] < END]


def stored_rows(url: str) -> list[Row]:
    """What the command stored, as exact strings."""
    engine = create_engine(db.normalize_url(url))
    with engine.connect() as connection:
        result = connection.execute(
            text(
                "SELECT open_time, CAST(open AS TEXT), CAST(high AS TEXT), CAST(low AS TEXT), "
                "CAST(close AS TEXT), CAST(volume AS TEXT) FROM candles "
                "WHERE symbol = 'BTCUSDT' AND interval = '1m' ORDER BY open_time"
            )
        ).all()
    engine.dispose()
    return [(int(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in result]


def same(stored: list[Row], truth: list[Row]) -> bool:
    """Exact equality, reading numbers as decimals (PostgreSQL's NUMERIC may pad zeros)."""
    from decimal import Decimal

    if len(stored) != len(truth):
        return False
    return all(
        s[0] == t[0]
        and all(Decimal(a) == Decimal(str(b)) for a, b in zip(s[1:], t[1:], strict=True))
        for s, t in zip(stored, truth, strict=True)
    )


def run_once(base_url: str, database_url: str) -> tuple[float, float]:
    """One whole `candlecast download` process; returns its wall and CPU (user + sys) time.

    On a loaded machine the CPU time is what the wall time would be on an idle one.
    """
    env = {**os.environ, "CANDLECAST_DUMPS_URL": base_url, "CANDLECAST_DATABASE_URL": database_url}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["candlecast", *COMMAND], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--databases", default="sqlite")
    args = parser.parse_args()
    truth = expected_rows()
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f}")
    from benchmarks.common import fake_exchange_process

    with fake_exchange_process(SHARED_DATA / CSV, "2025-08-18T00:00:00Z") as base_url:
        for month in ("2025-06", "2025-07"):  # the fake builds each zip once; not timed
            path = f"/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-{month}.zip"
            httpx.get(base_url + path).raise_for_status()
        httpx.post(base_url + "/_fake/dumps", json={"reset": True}).raise_for_status()
        for kind in args.databases.split(","):
            times: list[float] = []
            cpus: list[float] = []
            for _ in range(args.runs):
                with tempfile.TemporaryDirectory() as folder:
                    if kind == "sqlite":
                        url = f"sqlite:///{Path(folder) / 'new.db'}"
                        wall, cpu = run_once(base_url, url)
                        exact = same(stored_rows(url), truth)
                    else:
                        with scratch_database(kind, Path(folder)) as url:
                            wall, cpu = run_once(base_url, url)
                            exact = same(stored_rows(url), truth)
                times.append(wall)
                cpus.append(cpu)
                if not exact:
                    raise SystemExit(f"{kind}: the stored candles differ from the fixture")
            best = median(times)
            runs = ", ".join(f"{t:.2f}" for t in times)
            cpu = median(cpus)
            print(
                f"{kind}: wall median {best:.2f} s ({runs}), {len(truth) / best:,.0f} candles/s; "
                f"CPU median {cpu:.2f} s, {len(truth) / cpu:,.0f} candles/s; "
                f"{len(truth)} candles, exact"
            )


if __name__ == "__main__":
    main()
