"""Times GET /metrics with 10 pairs' worth of series registered, from uvicorn in this process.

The database holds 10 pairs (the real 5m fixture imported under 10 symbols, ~27,000 candles
each), a day of scored forecasts per pair, and a week of job runs per pair (20,160 runs). The
process has counted exchange requests, stream messages and HTTP requests on every route.
Three figures, each the median of --runs scrapes:
- "fresh": the database figures are younger than the collector's TTL (2 s), as when Prometheus
  and a dashboard scrape close together;
- "expired": every scrape finds the figures stale, as with Prometheus' usual 15 s interval; the
  read takes longer than 5 ms here, so the scrape answers with the last figures and the read
  runs after the answer (1 s between scrapes lets it finish);
- "db read": one refresh of the database figures on its own (what runs in the background).
Usage: python -m benchmarks.metrics [--backend sqlite|postgresql] [--runs 15]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchmarks.common import SHARED_DATA, machine, median, scratch_database
from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.jobs import import_file
from candlecast.metrics.snapshot import RunTally, read_figures
from candlecast.runtime import Runtime
from candlecast.store import candle_reads, db, ledger
from candlecast.store.db import write_transaction
from candlecast.store.tables import forecasts, job_runs

MAIN_CSV = SHARED_DATA / "btcusdt-5m-2025-06-29_2025-10-06.csv"
SYMBOLS = (
    "BTCUSDT",
    "ETHUSDT",
    "BNBUSDT",
    "SOLUSDT",
    "XRPUSDT",
    "ADAUSDT",
    "DOGEUSDT",
    "TRXUSDT",
    "LINKUSDT",
    "DOTUSDT",
)
STEP = 300_000
ROUTES = (
    "/api/version",
    "/api/health",
    "/api/jobs",
    "/api/candles",
    "/api/forecast",
    "/api/models",
    "/api/ledger",
    "/api/series?fallback_days=1",
    "/",
    "/jobs",
)


def _forecasts(engine: Any, symbol: str) -> None:
    """A day of forecasts for the pair's last day of candles, recorded, then scored."""
    with engine.connect() as connection:
        last = candle_reads.last_open_time(connection, symbol=symbol, interval="5m")
        assert last is not None
        day = candle_reads.read_candles(
            connection, symbol=symbol, interval="5m", start=last - 289 * STEP, end=last
        )
    with write_transaction(engine) as connection:
        for before, target in itertools.pairwise(day):
            close = before.close
            entry = ledger.Forecast(
                model_id=SYMBOLS.index(symbol) + 1,
                symbol=symbol,
                interval="5m",
                made_at=target.open_time,
                made_at_exchange=None,
                asof_open_time=before.open_time,
                target_open_time=target.open_time,
                asof_close=close,
                pred_open=close,
                pred_high=close,
                pred_low=close,
                pred_close=close + Decimal("3.5"),
                pred_range=Decimal("40"),
                close_lo=close - 60,
                close_hi=close + 60,
                interval_level=Decimal("0.9"),
                prob_up=Decimal("0.51"),
                baselines={"base_prob_up": 0.5},
            )
            # Recorded as if before its candle existed: the ledger's own rule is not timed here.
            connection.execute(forecasts.insert().values(**entry.__dict__))
        ledger.score(connection, symbol=symbol, interval="5m", scored_at=last)


def _job_runs(engine: Any) -> None:
    """A week of 5-minute ingest runs per pair, as a service leaves them in job_runs."""
    rows = [
        {
            "name": "ingest",
            "symbol": symbol,
            "interval": "5m",
            "status": "ok",
            "started_at": k * STEP,
            "finished_at": k * STEP + 180 + k % 900,
            "host": "bench:1",
            "details": {"fetched": 1, "inserted": 1, "repaired": 1 if k % 500 == 0 else 0},
        }
        for symbol in SYMBOLS
        for k in range(7 * 288)
    ]
    with write_transaction(engine) as connection:
        connection.execute(job_runs.insert(), rows)


def prepare(url: str, folder: Path) -> None:
    """Fills the database: candles, forecasts and job runs for 10 pairs."""
    engine = db.create_store_engine(url)
    for symbol in SYMBOLS:
        # The importer checks a file's name against its pair: one link per pair.
        path = folder / f"{symbol.lower()}-5m.csv"
        path.symlink_to(MAIN_CSV)
        import_file(engine, path=path, symbol=symbol, interval="5m")
        _forecasts(engine, symbol)
    _job_runs(engine)
    # The steady state of a running service: the imports were not just now, and (on
    # PostgreSQL) autovacuum has set the visibility map that index-only counts rely on.
    with write_transaction(engine) as connection:
        connection.execute(
            job_runs.update()
            .where(job_runs.c.name == "import")
            .values(
                started_at=job_runs.c.started_at - 3_600_000,
                finished_at=job_runs.c.finished_at - 3_600_000,
            )
        )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def _scrape(http: httpx.Client) -> tuple[float, int]:
    started = time.perf_counter()
    response = http.get("/metrics")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed, len(response.content)


@contextmanager
def _uvicorn(app: Any) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (a client has the answer before any work the
    app does after sending it); yields the base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def measure(url: str, runs: int) -> dict[str, Any]:
    """Scrape timings on a prepared database, over HTTP from a real server in this process."""
    engine = db.create_store_engine(url)
    services = Services(settings=Settings(database_url=url), engine=engine)
    app = create_app(services, Runtime())
    metrics = services.metrics
    assert metrics is not None
    for endpoint in ("/api/v3/klines", "/api/v3/time", "/api/v3/exchangeInfo", "/api/v3/ping"):
        for status in ("200", "429", "418", "500", "error"):
            metrics.exchange_request(endpoint, status, 40)
    metrics.stream_connected(reconnect=False)
    metrics.stream_message()
    with _uvicorn(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        for symbol in SYMBOLS[:2]:
            for route in ROUTES:
                joiner = "&" if "?" in route else "?"
                http.get(f"{route}{joiner}symbol={symbol}")
        wait = metrics.store.max_wait
        metrics.store.max_wait = 60.0
        _, size = _scrape(http)  # the first read fills the snapshot
        metrics.store.max_wait = wait
        fresh = [_scrape(http)[0] for _ in range(runs)]
        metrics.store.ttl = 0.0
        expired = []
        for _ in range(runs):
            expired.append(_scrape(http)[0])
            # Prometheus scrapes every 15 s: the read a scrape started is long done by the next.
            time.sleep(1.0)
        page = http.get("/metrics").text
    cold_started = time.perf_counter()
    tally = RunTally()
    read_figures(engine, tally)
    cold = time.perf_counter() - cold_started
    reads = []
    for _ in range(runs):
        started = time.perf_counter()
        read_figures(engine, tally)
        reads.append(time.perf_counter() - started)
    engine.dispose()
    series = sum(1 for line in page.splitlines() if line and not line.startswith("#"))
    return {
        "fresh": fresh,
        "expired": expired,
        "db_read": reads,
        "db_read_cold": [cold],
        "bytes": size,
        "series": series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(machine())
    with (
        tempfile.TemporaryDirectory() as folder,
        scratch_database(args.backend, Path(folder)) as url,
    ):
        started = time.perf_counter()
        prepare(url, Path(folder))
        print(f"prepared 10 pairs in {time.perf_counter() - started:.1f} s")
        result = measure(url, args.runs)
    print(f"/metrics: {result['series']} series, {result['bytes']:,} bytes")
    for name in ("fresh", "expired", "db_read", "db_read_cold"):
        values = result[name]
        runs = ", ".join(f"{v * 1000:.1f}" for v in values)
        print(f"{args.backend} {name}: median {median(values) * 1000:.1f} ms (runs: {runs})")


if __name__ == "__main__":
    main()
