"""Backfill of 90 days of 5m candles from the fake exchange (its own process), fresh and re-run.

Run: python -m benchmarks.backfill [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import SHARED_DATA, fake_exchange_process, machine, median, scratch_database
from candlecast import jobs
from candlecast.exchange.rest import BinanceRest
from candlecast.store import db

# The clock sits in the middle of a candle, as in the exactness test.
START = "2025-09-30T12:02:30Z"


def measure(kind: str, base_url: str, runs: int) -> dict[str, object]:
    """Median wall time of a fresh backfill and of a re-run with nothing new."""
    fresh: list[float] = []
    rerun: list[float] = []
    calls: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            with scratch_database(kind, Path(folder)) as url:
                engine = db.create_store_engine(url)
                with BinanceRest(base_url=base_url) as client:
                    started = time.perf_counter()
                    report = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=90)
                    fresh.append(time.perf_counter() - started)
                    calls["fresh"] = report.calls
                    calls["candles"] = report.written.inserted
                    started = time.perf_counter()
                    again = jobs.backfill(engine, client, symbol="BTCUSDT", interval="5m", days=90)
                    rerun.append(time.perf_counter() - started)
                    calls["rerun"] = again.calls
                engine.dispose()
    return {
        "database": kind,
        "fresh_median_s": round(median(fresh), 3),
        "rerun_median_s": round(median(rerun), 4),
        "fresh_runs_s": [round(x, 3) for x in fresh],
        "rerun_runs_s": [round(x, 4) for x in rerun],
        **calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    csv = SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv"
    results = []
    with fake_exchange_process(csv, START) as base_url:
        for kind in args.databases.split(","):
            results.append(measure(kind, base_url, args.runs))
    print(json.dumps({"machine": machine(), "runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
