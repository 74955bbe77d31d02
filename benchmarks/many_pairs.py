"""Many pairs in one service (issue 9's targets), against the fake exchange, each part by a flag:

--cold    N pairs of 5m (default 50), 90 days each, started cold: time until every pair is
          backfilled (pairs.backfilled_at) and until every pair has a forecast in the ledger,
          the fake's 429s and peak weight per minute, serve's RSS (training children apart).
--close   then, at --close-speed, for --closes shared candle closes: the latency from the close
          (the fake's clock passing open_time + interval, mapped to host time) to each pair's
          forecast of the next candle in the ledger (made_at, host ms); the trainings' cadence.
--api     then /api/forecast p50/p99 from 8 clients while trainings run, and /api/pairs.
--scale   CPU time and RSS at start-up and in steady state, for --scale-sizes pairs each.
--hourly  200 pairs of 1h: serve stays up, /api/pairs latency, /markets interactive in Chromium.

--cold, --close and --api share one service. The fake exchange (benchmarks.many_pairs_fake) and
`candlecast serve` run as their own processes; serve's database is a fresh SQLite file, or a
fresh schema in --database-url's PostgreSQL. With --workers N (PostgreSQL), N `candlecast worker`
processes run beside serve and share its tasks and stream shards (issue 10's scale-out).

Run: python -m benchmarks.many_pairs --cold --close --api [--pairs 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from benchmarks.common import SHARED_DATA, machine, scratch_database
from benchmarks.many_pairs_session import TOKEN, Session, load, start_session
from benchmarks.many_pairs_web import api_pairs_latency, markets_interactive
from candlecast.domain import INTERVAL_MS
from candlecast.store.tables import candles

CSV_5M = SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv"
START_5M = "2025-10-01T00:02:30Z"  # 94 days into the file, mid-candle
CSV_1H = SHARED_DATA / "btcusdt-1h-2024-07-19_2026-07-19-full.csv"
START_1H = "2026-07-01T00:30:00Z"
LATE_S = 30.0  # a close's forecasts are looked for up to this long after the last close


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of values."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """n, p50, p95, p99 and max."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), digits),
        "p95": round(percentile(values, 0.95), digits),
        "p99": round(percentile(values, 0.99), digits),
        "max": round(max(values), digits),
    }


@contextmanager
def session(
    args: argparse.Namespace, count: int, interval: str, extra: dict[str, str] | None = None
) -> Iterator[Session]:
    """A fake and serve following `count` synthetic pairs, on a fresh database."""
    folder = Path(tempfile.mkdtemp(prefix="many-pairs-"))
    kind = "postgresql" if args.database_url else "sqlite"
    csv, start = (CSV_5M, START_5M) if interval == "5m" else (CSV_1H, START_1H)
    with scratch_database(kind, folder) as url:
        running = start_session(
            csv=csv,
            count=count,
            interval=interval,
            start=start,
            speed=args.cold_speed,
            url=url,
            folder=folder,
            extra_env=extra,
            workers=args.workers,
        )
        try:
            yield running
        finally:
            running.stop()
            print(f"# serve's log: {folder / 'serve.log'}", flush=True)


def cold(run: Session, timeout: float, *, forecasts: bool = True) -> dict[str, Any]:
    """Polls until every pair is backfilled and (with `forecasts`) forecasting, or until the
    timeout; the times from serve's launch, and when each further pair began forecasting."""
    count = len(run.followed)
    backfilled_s = forecasting_s = None
    forecasting = 0
    timeline: list[float] = []  # seconds until the first, second, ... pair forecast
    while time.monotonic() - run.launched < timeout:
        if not run.alive():
            raise RuntimeError(f"serve exited; see {run.folder / 'serve.log'}")
        backfilled, forecasting, _ = run.progress()
        run.usage()
        elapsed = round(time.monotonic() - run.launched, 1)
        timeline += [elapsed] * (forecasting - len(timeline))
        if backfilled_s is None and backfilled >= count:
            backfilled_s = elapsed
            if not forecasts:
                break
        if forecasting >= count:
            forecasting_s = elapsed
            break
        time.sleep(0.5)
    with run.engine.connect() as connection:
        counts = connection.execute(
            select(candles.c.symbol, func.count()).group_by(candles.c.symbol)
        ).all()
    per_pair = [int(n) for _, n in counts]
    trains = [(f - s) / 1000 for _, status, s, f in run.runs("train") if f and status == "ok"]
    return {
        "pairs": count,
        "backfilled_all_s": backfilled_s,
        "forecasting_all_s": forecasting_s,
        "forecasting_pairs": forecasting,
        "forecasting_timeline_s": timeline,
        "candles_per_pair": [min(per_pair, default=0), max(per_pair, default=0)],
        "first_trainings_s": summary(trains, 2),
        "fake": run.fake_stats(),
        "usage": run.usage().view(),
        "peak_rss_mb": dict(run.peak_rss),
        "load": load(),
    }


def steady(run: Session, seconds: float) -> dict[str, Any]:
    """CPU used per second and RSS over `seconds` of running."""
    before, started = run.usage(), time.monotonic()
    launched_ms = int(time.time() * 1000)
    while time.monotonic() - started < seconds:
        time.sleep(2.0)
        run.usage()
    after, took = run.usage(), time.monotonic() - started
    trainings = [r for r in run.runs("train", launched_ms) if r[3] is not None]
    return {
        "seconds": round(took, 1),
        "cpu_per_s": round((after.cpu - before.cpu) / took, 3),
        "serve_cpu_per_s": round((after.serve_cpu - before.serve_cpu) / took, 3),
        "trainings_in_window": len(trainings),
        "usage": after.view(),
        "load": load(),
    }


def close(run: Session, speed: float, closes: int, interval: str) -> dict[str, Any]:
    """Latency from each shared close to each pair's next forecast in the ledger, in seconds."""
    step = INTERVAL_MS[interval]
    # Only pairs with a model can forecast: the others are still waiting for their first one.
    forecasting = sorted(run.progress()[2])
    run.set_speed(speed)
    exchange0, host0, _ = run.clock()
    # The candle in progress may have closed during the speed change: start one later.
    targets = [(exchange0 // step + 2 + k) * step for k in range(closes)]

    def host(exchange_ms: int) -> float:
        return host0 + (exchange_ms - exchange0) / speed / 1000

    since_ms = int(time.time() * 1000)
    # Forecasts later than this after the last close count as missing.
    steady_figures = steady(run, max(0.0, host(targets[-1]) + LATE_S - time.time()))
    exchange1, host1, _ = run.clock()
    made = run.made_at(targets)
    per_close = []
    everything: list[float] = []
    for target in targets:
        latencies = [
            made[(symbol, target)] / 1000 - host(target)
            for symbol in forecasting
            if (symbol, target) in made
        ]
        everything += latencies
        per_close.append({**summary(latencies), "missing": len(forecasting) - len(latencies)})
    return {
        "speed": speed,
        "closes": len(targets),
        "pairs_forecasting": len(forecasting),
        "all": summary(everything),
        "median_of_close_p95": round(statistics.median(c.get("p95", 0) for c in per_close), 3),
        "per_close": per_close,
        "clock_drift_s": round(host(exchange1) - host1, 3),
        "steady": steady_figures,
        "trainings": cadence(run, since_ms),
    }


def cadence(run: Session, since_ms: int) -> dict[str, Any]:
    """How the trainings went since a time: durations, per-pair gaps, pairs never retrained."""
    by_pair: dict[str, list[int]] = defaultdict(list)
    durations = []
    statuses: dict[str, int] = defaultdict(int)
    for symbol, status, started, finished in run.runs("train", since_ms):
        statuses[status] += 1
        by_pair[symbol].append(started)
        if finished is not None:
            durations.append((finished - started) / 1000)
    gaps = [(b - a) / 1000 for starts in by_pair.values() for a, b in itertools.pairwise(starts)]
    window = time.time() - since_ms / 1000
    median = statistics.median(durations) if durations else None
    return {
        "window_s": round(window, 1),
        "runs": dict(statuses),
        "pairs_trained": len(by_pair),
        "duration_s": summary(durations, 2),
        "max_gap_s": round(max(gaps), 1) if gaps else None,
        "pool_cycle_s": round(median * len(run.followed), 1) if median else None,
        "job_names": run.run_names(),
    }


async def _hammer(url: str, stop: threading.Event, latencies: list[float]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:

        async def worker() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(8)))


def api(run: Session, seconds: float, interval: str) -> dict[str, Any]:
    """/api/forecast from 8 clients while POST /api/train trains pair after pair; /api/pairs."""
    first = run.followed[0].split(":")[0]
    url = f"{run.api}/api/forecast?symbol={first}&interval={interval}"
    stop = threading.Event()
    latencies: list[float] = []
    loader = threading.Thread(target=lambda: asyncio.run(_hammer(url, stop, latencies)))
    since_ms = int(time.time() * 1000)
    loader.start()
    trained = []
    started = time.monotonic()
    for symbol in run.followed:
        if time.monotonic() - started > seconds:
            break
        answer = httpx.post(
            f"{run.api}/api/train",
            params={"symbol": symbol.split(":")[0], "interval": interval},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=600,
        )
        body = answer.json() if answer.status_code in (200, 202) else {}
        trained.append(f"{answer.status_code}:{body.get('reason') or body.get('model_id')}")
    stop.set()
    loader.join()
    runs = run.runs("train", since_ms) + run.runs("api-train", since_ms)
    busy = sum(int(finished or time.time() * 1000) - start for _, _, start, finished in runs)
    return {
        "forecast_ms_while_training": summary(latencies, 2),
        "window_s": round(time.monotonic() - started, 1),
        "train_runs": len(runs),
        "training_busy_s": round(busy / 1000, 1),
        "train_answers": trained,
        "pairs_route_ms": api_pairs_latency(run.api, 100),
        "load": load(),
    }


def hourly(args: argparse.Namespace) -> dict[str, Any]:
    """200 pairs of 1h: once all are backfilled, /api/pairs and /markets; again later."""
    result: dict[str, Any] = {}
    with session(args, args.hourly_pairs, "1h") as run:
        result["cold"] = cold(run, args.hourly_timeout, forecasts=False)
        rounds = [("at_backfilled", 0.0), ("later", args.hourly_wait)]
        for name, wait in rounds:
            time.sleep(wait)
            if not run.alive():
                raise RuntimeError(f"serve exited; see {run.folder / 'serve.log'}")
            result[name] = {
                "forecasting_pairs": run.progress()[1],
                "pairs_route_ms": api_pairs_latency(run.api, 100),
                "markets": markets_interactive(run.api, args.hourly_pairs, args.runs),
                "usage": run.usage().view(),
                "alive": run.alive(),
                "load": load(),
            }
        result["fake"] = run.fake_stats()
    return result


def scale(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start-up and steady-state CPU and RSS for each size."""
    table = []
    for size in args.scale_sizes:
        with session(args, size, "5m") as run:
            started = cold(run, args.timeout)
            run.set_speed(args.close_speed)
            figures = steady(run, args.steady_seconds)
            table.append(
                {
                    "pairs": size,
                    "forecasting_all_s": started["forecasting_all_s"],
                    "startup_cpu_s": started["usage"]["cpu_s"],
                    "steady": figures,
                    "api": api(run, 20.0, "5m"),
                    "peak_rss_mb": dict(run.peak_rss),
                }
            )
        print(json.dumps(table[-1]), flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for part in ("cold", "close", "api", "scale", "hourly"):
        parser.add_argument(f"--{part}", action="store_true")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--database-url", help="PostgreSQL to use instead of SQLite")
    parser.add_argument(
        "--workers", type=int, default=0, help="queue workers beside serve (PostgreSQL only)"
    )
    parser.add_argument("--cold-speed", type=float, default=1.0)
    parser.add_argument("--close-speed", type=float, default=10.0)
    parser.add_argument("--closes", type=int, default=6)
    parser.add_argument("--observe", type=float, default=0.0, help="extra steady seconds")
    parser.add_argument("--api-seconds", type=float, default=60.0)
    parser.add_argument("--scale-sizes", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--steady-seconds", type=float, default=120.0)
    parser.add_argument("--hourly-pairs", type=int, default=200)
    parser.add_argument("--hourly-wait", type=float, default=300.0)
    parser.add_argument("--hourly-timeout", type=float, default=600.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--runs", type=int, default=3, help="browser runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.scale_sizes = args.scale_sizes or [1, 10, 50]
    if args.workers and not args.database_url:
        parser.error("--workers needs --database-url: queue workers share a PostgreSQL")
    if args.database_url:
        import benchmarks.common as common

        common.POSTGRES_URL = args.database_url
    result: dict[str, Any] = {"machine": machine(), "load_at_start": load()}
    if args.cold or args.close or args.api:
        with session(args, args.pairs, "5m") as run:
            result["cold"] = cold(run, args.timeout)
            print(json.dumps(result["cold"]), flush=True)
            if args.close:
                result["close"] = close(run, args.close_speed, args.closes, "5m")
                if args.observe:
                    since_ms = int(time.time() * 1000) - 1000
                    result["observe"] = steady(run, args.observe)
                    result["observe"]["trainings"] = cadence(run, since_ms)
            if args.api:
                result["api"] = api(run, args.api_seconds, "5m")
            result["peak_rss_mb"] = dict(run.peak_rss)
            result["fake_at_end"] = run.fake_stats()
    if args.scale:
        result["scale"] = scale(args)
    if args.hourly:
        result["hourly"] = hourly(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
