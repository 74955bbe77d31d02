"""Drives /api/forecast, /api/health and a 1-day /api/series on a uvicorn process with 32
concurrent clients: wrk if installed, else an httpx/asyncio generator in its own process.

Usage: python -m benchmarks.api_load [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.api_common import LAST, prepare
from benchmarks.common import REPO, machine, scratch_database

PATHS = ("/api/forecast", "/api/health", "/api/series?fallback_days=1")


def app_factory() -> Any:
    """uvicorn --factory target: the real app over CANDLECAST_DATABASE_URL, clock at LAST."""
    from candlecast.api import create_app
    from candlecast.bootstrap import bootstrap
    from candlecast.config import Settings
    from candlecast.runtime import Runtime

    # The data ends at LAST; pretend it is a minute after that candle closed, so health is 200.
    services = bootstrap(Settings(), migrate=False)
    return create_app(services, Runtime(), clock=lambda: LAST + 360_000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not found:
            return float("nan")
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "req_per_s": float(rate.group(1)) if rate else float("nan"),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


async def _drive(url: str, seconds: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(connections)))
    latencies.sort()
    return {
        "req_per_s": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:  # the fallback generator, run as its own process
        print(json.dumps(asyncio.run(_drive(args.drive, args.seconds, args.connections))))
        return
    with tempfile.TemporaryDirectory() as folder, scratch_database("sqlite", Path(folder)) as url:
        prepare(url, train_days=30)
        port = _free_port()
        env = {**os.environ, "CANDLECAST_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "benchmarks.api_load:app_factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    httpx.get(base + "/api/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            tool = "wrk" if shutil.which("wrk") else "httpx"
            report: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}
            report["tool"] = tool
            for path in PATHS:
                httpx.get(base + path, timeout=10).raise_for_status()
                if shutil.which("wrk"):
                    result = _wrk(base + path, args.seconds, args.connections)
                else:
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "benchmarks.api_load",
                            "--drive",
                            base + path,
                            "--seconds",
                            str(args.seconds),
                            "--connections",
                            str(args.connections),
                        ],
                        cwd=REPO,
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    result = json.loads(out)
                report[path] = result
                print(
                    f"{path:32s} {result['req_per_s']:8.0f} req/s   p50 {result['p50_ms']:.2f} ms"
                    f"   p99 {result['p99_ms']:.2f} ms"
                )
            report["load_after"] = os.getloadavg()
            print(json.dumps(report, indent=2))
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
