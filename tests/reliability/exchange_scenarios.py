"""Exchange-fault scenarios, shared by tests/reliability and benchmarks/reliability.py.

Each scenario injects one fault class into the fake exchange while the real jobs (or the real
service's stream consumer) run, then returns the tally from check_exact.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import IPBanned
from candlecast.exchange.rest import KLINES_WEIGHT, BinanceRest
from candlecast.jobs import sync
from candlecast.runtime import Runtime
from candlecast.service import Service
from candlecast.store import candle_reads
from candlecast.usecases.build import build_operations
from tests.fake_exchange.server import FakeExchange
from tests.reliability.support import (
    DAY_MS,
    STEP,
    Tally,
    check_exact,
    cli,
    cli_environment,
    cli_log,
    closed_window,
)
from tests.usecase_fakes import no_training

SYMBOL, INTERVAL = "BTCUSDT", "5m"
IN_FLIGHT_GRACE_S = 0.5

# Fault class -> FaultConfig changes. Every few requests fails; retries must carry each through.
REST_FAULTS: dict[str, dict[str, Any]] = {
    "429 with Retry-After": {"every_429": 3, "retry_after_429": "0.2"},
    "5xx": {"every_5xx": 3, "status_5xx": 503},
    "timeout": {"every_slow": 4, "slow_seconds": 1.0},
    "dropped connection": {"every_drop": 3},
    "malformed JSON": {"every_malformed": 3},
    "empty page mid-range": {"every_empty": 2, "max_faults": 1, "only_path": "/api/v3/klines"},
}

# Stream fault class -> FaultConfig changes for the kline WebSocket.
STREAM_FAULTS: dict[str, dict[str, Any]] = {
    "stream drop mid-candle": {"ws_drop_every_messages": 7},
    "stream duplicate messages": {"ws_duplicate_closes": True},
    "stream out-of-order messages": {"ws_reorder_closes": True},
    "stream silent stall": {"ws_stall_after_messages": 5, "ws_stalls": 2},
}


def injected_faults(fake: FakeExchange) -> int:
    """How many faults the fake exchange injected since its faults were last set."""
    counters = fake.fault_counters()
    return sum(v for k, v in counters.items() if k not in ("requests", "during_ban"))


def fast_client(base_url: str, **overrides: Any) -> BinanceRest:
    """The real REST client with short timeouts and backoff, so a test sees many faults."""
    options: dict[str, Any] = {
        "base_url": base_url,
        "timeout": 0.4,
        "max_retries": 8,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    return BinanceRest(**{**options, **overrides})


def rest_fault_run(
    engine: Engine, fake: FakeExchange, faults: dict[str, Any], *, days: int = 20
) -> Tally:
    """Backfill, then ingest two more days, with the fault on; the store must equal the truth."""
    fake.clock.set(speed=0)
    fake.set_faults(**faults)
    with fast_client(fake.base_url) as client:
        report = sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=days)
        fake.clock.advance(2 * DAY_MS)
        sync.ingest(engine, client, symbol=SYMBOL, interval=INTERVAL, days=days)
    now = fake.clock.now_ms()
    _, last = closed_window(now, days)
    tally = check_exact(engine, fake.market, first=report.window_first, last=last, exchange_now=now)
    tally.faults = injected_faults(fake)
    fake.clear_faults()
    return tally


class VirtualWall:
    """A wall clock that sleeps instantly: the governor's minutes pass without real waiting."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        """time.time() plus everything slept so far."""
        with self._lock:
            return time.time() + self._offset

    def sleep(self, seconds: float) -> None:
        """Advances the clock instead of blocking."""
        with self._lock:
            self._offset += max(0.0, seconds)


class Recorder(httpx.HTTPTransport):
    """The real HTTP transport, noting when (by the client's clock) each request left."""

    def __init__(self, clock: VirtualWall) -> None:
        super().__init__()
        self.clock = clock
        # (sent at, path, status, answered at), by the client's clock.
        self.sent: list[tuple[float, str, int, float]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sent_at = self.clock.time()
        response = super().handle_request(request)
        answered = self.clock.time()
        self.sent.append((sent_at, request.url.path, response.status_code, answered))
        return response


def weight_budget_run(
    engine: Engine, fake: FakeExchange, *, budget: int = 20, retry_after: int = 5
) -> tuple[Tally, dict[str, Any]]:
    """A 429 with Retry-After mid-backfill; afterwards the client waits it out and keeps every
    minute's weight within its budget. Returns the tally and the per-minute weights."""
    fake.clock.set(speed=0)
    fake.set_faults(every_429=3, retry_after_429=str(retry_after), max_faults=1)
    wall = VirtualWall()
    recorder = Recorder(wall)
    client = fast_client(
        fake.base_url,
        weight_budget_per_minute=budget,
        sleep=wall.sleep,
        wall_clock=wall.time,
        transport=recorder,
    )
    with client:
        report = sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=30)
    now = fake.clock.now_ms()
    tally = check_exact(
        engine, fake.market, first=report.window_first, last=report.window_last, exchange_now=now
    )
    limited = [answered for _, _, status, answered in recorder.sent if status == 429]
    tally.faults = len(limited)
    per_minute: dict[int, int] = {}
    for sent_at, path, _, _ in recorder.sent:
        weight = KLINES_WEIGHT if path == "/api/v3/klines" else 1
        per_minute[int(sent_at // 60)] = per_minute.get(int(sent_at // 60), 0) + weight
    # Requests already past the governor when the 429 came back (other threads) may still
    # leave in the next instants; anything later must wait out Retry-After.
    settled = limited[0] + IN_FLIGHT_GRACE_S if limited else 0.0
    after = [sent for sent, _, _, _ in recorder.sent if limited and sent >= settled]
    figures = {
        "requests": len(recorder.sent),
        "rate_limited": len(limited),
        "first_gap_after_429_s": (min(after) - limited[0]) if after else None,
        "sent_just_after_429": sum(
            1 for sent, _, _, _ in recorder.sent if limited and limited[0] <= sent < settled
        ),
        "max_weight_per_minute": max(per_minute.values()),
        "minutes": len(per_minute),
    }
    fake.clear_faults()
    return tally, figures


def stream_fault_run(
    engine: Engine,
    fake: FakeExchange,
    settings: Settings,
    faults: dict[str, Any],
    *,
    closes: int = 12,
    lag_candles: int = 0,
) -> Tally:
    """The service's real stream consumer under a stream fault: closed candles are stored,
    a reconnect fetches the gap over REST. Every candle that closed meanwhile must be exact."""
    services = Services(settings=settings, engine=engine)
    with fast_client(fake.base_url) as client:
        first = sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=1).window_first
    with engine.connect() as connection:
        start = candle_reads.last_open_time(connection, symbol=SYMBOL, interval=INTERVAL)
    assert start is not None
    # Candles that close before the stream connects are never sent on it.
    fake.clock.advance(lag_candles * STEP)
    fake.set_faults(**faults)
    runtime = Runtime(stream_enabled=True)
    operations = build_operations(services, runtime, trainer=no_training)
    operations.seed_pairs()
    service = Service(services, runtime, operations, scheduler=False)
    # Seconds instead of the production 20-60 s, so a stall is noticed within the test.
    service.stream_options = {
        "idle_timeout_seconds": 1.5,
        "ping_interval": 0.5,
        "ping_timeout": 0.5,
        "open_timeout": 2.0,
        "backoff_base": 0.05,
        "backoff_max": 0.2,
    }
    target = start + closes * STEP
    thread = threading.Thread(target=service.run_stream, name="reliability-stream", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30 + closes
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                newest = candle_reads.last_open_time(connection, symbol=SYMBOL, interval=INTERVAL)
            if newest is not None and newest >= target:
                break
            time.sleep(0.2)
    finally:
        service.stop()
        thread.join(timeout=15)
    tally = check_exact(engine, fake.market, first=first, last=target)
    tally.faults = injected_faults(fake) + fake.stats.ws_connections - 1 + lag_candles
    fake.clear_faults()
    return tally


def reliability_settings(database_url: str, base_url: str) -> Settings:
    """Settings for in-process services against the fake exchange."""
    return Settings(
        database_url=database_url,
        binance_url=base_url,
        binance_ws_url=base_url.replace("http", "ws", 1),
        http_max_retries=2,
        api_token="reliability-token-0123456789",
    )


def ban_run(
    engine: Engine, database_url: str, fake: FakeExchange, folder: Path, *, ban_seconds: int
) -> tuple[Tally, dict[str, Any]]:
    """A 418 mid-backfill: no request leaves this process (a new client) or a new process
    until the ban ends; then a backfill completes exactly."""
    fake.clock.set(speed=0)
    fake.set_faults(every_418=2, retry_after_418=str(ban_seconds), ban_persists=True)
    services = Services(settings=reliability_settings(database_url, fake.base_url), engine=engine)
    banned_at = time.monotonic()
    figures: dict[str, Any] = {}
    try:
        with services.exchange() as client:
            sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=10)
        figures["first_run"] = "not banned"
    except IPBanned:
        figures["first_run"] = "banned"
    # Requests already in flight on other threads when the 418 came back may still arrive.
    before = fake.fault_counters()
    try:
        with services.exchange() as client:
            sync.backfill(engine, client, symbol=SYMBOL, interval=INTERVAL, days=10)
        figures["second_client"] = "not banned"
    except IPBanned:
        figures["second_client"] = "banned"
    env = cli_environment(database_url, fake.base_url)
    (folder / "cli.log").unlink(missing_ok=True)
    figures["restarted_cli_exit"] = cli(["backfill", "--days", "10"], env, folder).wait(60)
    figures["restarted_cli_said_banned"] = "banned" in cli_log(folder)
    figures["checked_within_ban"] = time.monotonic() - banned_at < ban_seconds
    after = fake.fault_counters()
    figures["requests_while_banned"] = after["requests"] - before["requests"]
    time.sleep(max(0.0, ban_seconds + 0.5 - (time.monotonic() - banned_at)))
    fake.set_faults(every_418=0, ban_persists=False)
    figures["after_ban_exit"] = cli(["backfill", "--days", "10"], env, folder).wait(120)
    now = fake.clock.now_ms()
    first, last = closed_window(now, 10)
    tally = check_exact(engine, fake.market, first=first, last=last, exchange_now=now)
    tally.faults = 1
    fake.clear_faults()
    return tally, figures
