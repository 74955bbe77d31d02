"""Times /api/series server-side, in process through httpx's ASGI transport.

Also times pipeline.refresh_after_candles for one new candle on the 90-day database.
Usage: python -m benchmarks.api_series [--backend sqlite|postgresql] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.api_common import LAST, prepare
from benchmarks.common import machine, median, scratch_database
from candlecast.api import create_app
from candlecast.api.context import ResponseCache
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.jobs import pipeline
from candlecast.runtime import Runtime
from candlecast.store import db
from candlecast.store.db import write_transaction
from candlecast.store.tables import candles

CASES: list[tuple[str, dict[str, Any]]] = [
    ("90d points", {"fallback_days": 90}),
    ("90d columns", {"fallback_days": 90, "format": "columns"}),
    ("90d points max_points=2000", {"fallback_days": 90, "max_points": 2000}),
    ("1d points", {"fallback_days": 1}),
    ("1d columns", {"fallback_days": 1, "format": "columns"}),
]


async def _time_case(app: Any, params: dict[str, Any], runs: int, cold: bool) -> tuple[float, int]:
    transport = httpx.ASGITransport(app=app)
    samples: list[float] = []
    size = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await client.get("/api/series", params=params)  # warm imports and the engine pool
        for _ in range(runs):
            if cold:
                app.state.context.series_cache = ResponseCache(size=16)
            started = time.perf_counter()
            response = await client.get("/api/series", params=params)
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            size = len(response.content)
    return median(samples), size


def _time_refresh(url: str, runs: int) -> float:
    """One new candle per run: delete the newest candle and its rows, then re-add and refresh."""
    engine = db.create_store_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            candles.select().where(candles.c.open_time > LAST - 10 * 300_000)
        ).all()
    samples = []
    for row in rows[-runs:]:
        with write_transaction(engine) as connection:
            connection.execute(candles.delete().where(candles.c.open_time >= row.open_time))
            connection.exec_driver_sql(
                f"DELETE FROM model_predictions WHERE open_time >= {int(row.open_time)}"
            )
        with write_transaction(engine) as connection:
            connection.execute(candles.insert().values(**row._mapping))
        started = time.perf_counter()
        pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
        samples.append((time.perf_counter() - started) * 1000)
    engine.dispose()
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        scratch_database(args.backend, Path(folder)) as url,
    ):
        report: dict[str, Any] = {"machine": machine(), "backend": args.backend,
                                  "load_before": os.getloadavg()}  # fmt: skip
        report.update(prepare(url))
        engine = db.create_store_engine(url)
        app = create_app(Services(Settings(database_url=url), engine), Runtime())
        results = {}
        for name, params in CASES:
            cold, size = asyncio.run(_time_case(app, params, args.runs, cold=True))
            warm, _ = asyncio.run(_time_case(app, params, args.runs, cold=False))
            results[name] = {"cold_ms": round(cold, 1), "cached_ms": round(warm, 2),
                             "bytes": size}  # fmt: skip
            print(f"{name:30s} cold {cold:7.1f} ms   cached {warm:6.2f} ms   {size:>9,} B")
        report["series"] = results
        engine.dispose()
        report["refresh_one_candle_ms"] = round(_time_refresh(url, 5), 1)
        print(f"refresh_after_candles, one new candle: {report['refresh_one_candle_ms']} ms")
        report["load_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
