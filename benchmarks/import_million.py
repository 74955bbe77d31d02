"""Bulk import of 1,000,000 candles into SQLite and PostgreSQL: throughput and peak memory.

The candles are the real 5m fixture repeated in shifted copies (35 copies of 28,599 rows,
truncated to 1,000,000), written to a temporary CSV. Each run imports it in a fresh child
process, so its peak RSS is that import's alone.

Run: python -m benchmarks.import_million [--runs 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_DATA, machine, median, scratch_database
from candlecast.domain import iso_utc, parse_iso_utc

TOTAL = 1_000_000
STEP = 300_000


def generate(path: Path) -> None:
    """Writes TOTAL candles: shifted copies of the real 5m fixture, one after another."""
    with (SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    span = len(rows) * STEP
    first = parse_iso_utc(rows[0]["open_time"])
    times = [parse_iso_utc(row["open_time"]) - first for row in rows]
    base = parse_iso_utc("2010-01-01T00:00:00Z")
    written = 0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["open_time", "open", "high", "low", "close", "volume"])
        copy = 0
        while written < TOTAL:
            offset = base + copy * span
            for row, delta in zip(rows, times, strict=True):
                writer.writerow(
                    [
                        iso_utc(offset + delta),
                        row["open"],
                        row["high"],
                        row["low"],
                        row["close"],
                        row["volume"],
                    ]
                )
                written += 1
                if written == TOTAL:
                    break
            copy += 1


def child(url: str, path: str) -> None:
    """Imports the file once and prints seconds, rows and peak RSS as JSON."""
    from candlecast import jobs
    from candlecast.store import db

    engine = db.create_store_engine(url)
    started = time.perf_counter()
    report = jobs.import_file(
        engine, path=Path(path), symbol="BTCUSDT", interval="5m", fallback=None
    )
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": report.written.inserted, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    results = []
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "btcusdt-5m-2010-01-01_million.csv"
        generate(data)
        for kind in args.databases.split(","):
            runs = []
            for _ in range(args.runs):
                with scratch_database(kind, Path(folder)) as url:
                    output = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.import_million",
                            "--child",
                            url,
                            str(data),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    runs.append(json.loads(output.stdout.strip().splitlines()[-1]))
            seconds = median([r["seconds"] for r in runs])
            results.append(
                {
                    "database": kind,
                    "rows": runs[0]["rows"],
                    "median_s": round(seconds, 2),
                    "candles_per_s": round(TOTAL / seconds),
                    "peak_rss_mb_max": round(max(r["peak_mb"] for r in runs)),
                    "runs_s": [round(r["seconds"], 2) for r in runs],
                }
            )
    print(json.dumps({"machine": machine(), "runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
