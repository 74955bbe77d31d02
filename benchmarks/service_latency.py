"""The running service, end to end: forecast latency after a candle closes on the stream, and
/api/forecast latency while a training job runs.

It starts the fake exchange (its own process, 60x speed: a 5m candle closes every 5 s) and
`candlecast serve` on a fresh SQLite database, waits for start-up, then:
1. for every candle that closes during `--observe` seconds, measures the wall time from the
   exchange closing it (its close_time on the fake's clock, mapped to real time) to the ledger
   holding the forecast for the next candle (the forecast's made_at);
2. forces a training run (POST /api/train) and drives GET /api/forecast with 8 concurrent
   clients for as long as it runs, reporting p50/p99.

Run: python -m benchmarks.service_latency [--observe 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select

from benchmarks.common import REPO, SHARED_DATA, machine
from candlecast.store.tables import forecasts

SPEED = 60.0
STEP = 300_000
TOKEN = "benchmark-token-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_exchange",
            "--csv",
            str(SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv"),
            "--start",
            "2025-09-20T12:02:30Z",
            "--speed",
            str(SPEED),
            "--ws-update-ms",
            "200",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _exchange_to_real(base_url: str) -> tuple[float, float]:
    """(exchange ms, wall-clock s) at one instant, to map exchange times to real ones."""
    before = time.time()
    exchange_ms = int(httpx.get(f"{base_url}/api/v3/time", timeout=5).json()["serverTime"])
    after = time.time()
    return float(exchange_ms), (before + after) / 2


async def _hammer(url: str, stop: threading.Event, latencies: list[float]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:

        async def worker() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--observe", type=float, default=60.0)
    args = parser.parse_args()
    fake, base_url = _start_fake()
    port = _free_port()
    folder = Path(tempfile.mkdtemp())
    database = f"sqlite:///{folder / 'candlecast.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": database,
            "CANDLECAST_BINANCE_URL": base_url,
            "CANDLECAST_BINANCE_WS_URL": base_url.replace("http", "ws"),
            "CANDLECAST_TRAIN_EVERY_SECONDS": "100000",
            "CANDLECAST_API_TOKEN": TOKEN,
        }
    )
    log = (folder / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "candlecast.cli", "serve", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"machine": machine()}
    try:
        started = time.monotonic()
        while True:
            try:
                if httpx.get(f"{api}/api/forecast", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 120:
                raise RuntimeError(f"serve did not get ready; see {folder / 'serve.log'}")
            time.sleep(0.5)
        result["ready_after_s"] = round(time.monotonic() - started, 1)
        exchange0, real0 = _exchange_to_real(base_url)
        begin = exchange0
        time.sleep(args.observe)
        engine = create_engine(database)
        with engine.connect() as connection:
            rows = connection.execute(
                select(forecasts.c.target_open_time, forecasts.c.made_at).where(
                    forecasts.c.target_open_time > begin + STEP
                )
            ).all()
        engine.dispose()
        latencies = []
        for target, made_at in rows:
            closed_exchange = target  # the previous candle closes at target - 1 ms
            closed_real = real0 + (closed_exchange - exchange0) / SPEED / 1000
            latencies.append(made_at / 1000 - closed_real)
        result["forecast_latency_s"] = {
            "candles": len(latencies),
            "median": round(statistics.median(latencies), 3) if latencies else None,
            "max": round(max(latencies), 3) if latencies else None,
        }
        stop = threading.Event()
        during: list[float] = []
        loader = threading.Thread(
            target=lambda: asyncio.run(_hammer(f"{api}/api/forecast", stop, during))
        )
        loader.start()
        time.sleep(1)
        trained = httpx.post(
            f"{api}/api/train",
            params={"days": 90},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=300,
        )
        stop.set()
        loader.join()
        during.sort()
        result["forecast_route_while_training"] = {
            "train_status": trained.status_code,
            "requests": len(during),
            "p50_ms": round(during[len(during) // 2], 2),
            "p99_ms": round(during[int(len(during) * 0.99) - 1], 2),
        }
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        fake.terminate()
        fake.wait(timeout=10)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
