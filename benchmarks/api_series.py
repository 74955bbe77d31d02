"""Times /api/series server-side, in process through httpx's ASGI transport.

Three figures per request: "first" (a fresh process: nothing held in memory), "new_candle"
(one candle closed and was forecast since the last request, the steady state of a running
service) and "cached" (nothing changed). Also times pipeline.refresh_after_candles for one
new candle on the 90-day database.
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
from candlecast.api.series_cache import TrailingColumns
from candlecast.api.shaping import MAX_WINDOW_DAYS
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.jobs import pipeline
from candlecast.jobs.common import DAY_MS, now_ms
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


def _forget(app: Any, *, columns: bool) -> None:
    """Drops the encoded-response cache and, with `columns`, the in-memory series columns."""
    context = app.state.context
    context.series_cache = ResponseCache(size=16)
    if columns:
        context.columns = TrailingColumns(span_ms=(MAX_WINDOW_DAYS + 1) * DAY_MS)


def _new_candle(url: str) -> None:
    """Takes the newest candle (and its prediction) away and writes it again, as a new close
    would: the next request must merge one row and one prediction."""
    engine = db.create_store_engine(url)
    with engine.connect() as connection:
        row = connection.execute(
            candles.select().order_by(candles.c.open_time.desc()).limit(1)
        ).one()
    with write_transaction(engine) as connection:
        connection.execute(candles.delete().where(candles.c.open_time == row.open_time))
        connection.exec_driver_sql(
            f"DELETE FROM model_predictions WHERE open_time >= {int(row.open_time)}"
        )
    with write_transaction(engine) as connection:
        connection.execute(candles.insert().values(**{**row._mapping, "fetched_at": now_ms()}))
    pipeline.refresh_after_candles(engine, symbol="BTCUSDT", interval="5m")
    engine.dispose()


async def _time_case(
    app: Any, params: dict[str, Any], runs: int, mode: str, url: str
) -> tuple[float, int]:
    """mode: "first" (nothing held), "new_candle" (one new candle since), "cached"."""
    transport = httpx.ASGITransport(app=app)
    samples: list[float] = []
    size = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        await client.get("/api/series", params=params)  # warm imports and the engine pool
        for _ in range(runs):
            if mode == "first":
                _forget(app, columns=True)
            elif mode == "new_candle":
                _new_candle(url)
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
        report: dict[str, Any] = {
            "machine": machine(),
            "backend": args.backend,
            "load_before": os.getloadavg(),
        }
        report.update(prepare(url))
        engine = db.create_store_engine(url)
        app = create_app(Services(Settings(database_url=url), engine), Runtime())
        results = {}
        for name, params in CASES:
            timed = {
                mode: asyncio.run(_time_case(app, params, args.runs, mode, url))
                for mode in ("first", "new_candle", "cached")
            }
            size = timed["first"][1]
            results[name] = {f"{mode}_ms": round(ms, 2) for mode, (ms, _) in timed.items()}
            results[name]["bytes"] = size
            print(
                f"{name:30s} "
                + "   ".join(f"{mode} {ms:7.1f} ms" for mode, (ms, _) in timed.items())
                + f"   {size:>9,} B"
            )
        report["series"] = results
        engine.dispose()
        report["refresh_one_candle_ms"] = round(_time_refresh(url, 5), 1)
        print(f"refresh_after_candles, one new candle: {report['refresh_one_candle_ms']} ms")
        report["load_after"] = os.getloadavg()
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
