"""kill -9 scenarios: the real `candlecast` CLI as a subprocess, SIGKILLed at a random moment.

Shared by tests/reliability/test_kill9.py (a few iterations) and benchmarks/reliability.py
(hundreds). After every kill the command is run again to completion, then the store is compared
with the truth; for training, the champion must load and stay the previous one or a newer,
complete model.
"""

from __future__ import annotations

import csv
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from candlecast.exchange.rest import BinanceRest
from candlecast.jobs import modeling, sync
from candlecast.store import db, registry
from candlecast.store.tables import candles, models
from tests.fake_exchange.market import kline_array
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

SYMBOL, INTERVAL = "BTCUSDT", "5m"
PHASES = ("backfill", "ingest", "import", "train")


@dataclass
class KillRig:
    """One database, the fake exchange and a working folder for a series of kills."""

    database_url: str
    engine: Engine
    fake: FakeExchange
    folder: Path
    rng: random.Random
    # How long each command took when run to completion: kills land within that span.
    durations: dict[str, float] = field(default_factory=dict)
    # CI trains on a short window to stay quick; the benchmark uses 20 days.
    train_days: int = 7

    def env(self) -> dict[str, str]:
        """The subprocess environment (fast retries, short training window)."""
        return cli_environment(
            self.database_url,
            self.fake.base_url,
            CANDLECAST_BACKFILL_DAYS="30",
            CANDLECAST_TRAIN_DAYS=str(self.train_days),
        )

    def run(self, args: list[str], timeout: float = 240) -> None:
        """Runs a command to completion; it must succeed."""
        started = time.monotonic()
        process = cli(args, self.env(), self.folder)
        code = process.wait(timeout=timeout)
        self.durations[args[0]] = time.monotonic() - started
        if code != 0:
            raise AssertionError(
                f"candlecast {' '.join(args)} exited {code}: {cli_log(self.folder)}"
            )

    def backfill_here(self) -> None:
        """A 30-day backfill in this process (set-up, not under test)."""
        with BinanceRest(base_url=self.fake.base_url) as client:
            sync.backfill(self.engine, client, symbol=SYMBOL, interval=INTERVAL, days=30)

    def kill_during(self, args: list[str], *, max_delay: float) -> tuple[float, bool]:
        """Starts a command and SIGKILLs it after a random delay; True if it was still running."""
        delay = self.rng.uniform(0.0, self.durations.get(args[0], max_delay))
        process = cli(args, self.env(), self.folder)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return delay, True
        return delay, False


def reset_candles(engine: Engine) -> None:
    """Empties the candle tables between iterations that need a fresh start."""
    with db.write_transaction(engine) as connection:
        for table in ("candles", "known_gaps", "job_runs"):
            connection.execute(text(f"DELETE FROM {table}"))


def integrity(engine: Engine) -> list[str]:
    """SQLite's integrity check ("ok" when the file is sound); nothing to check on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as connection:
        rows = [str(r[0]) for r in connection.exec_driver_sql("PRAGMA integrity_check")]
    return [] if rows == ["ok"] else rows


def _finish(rig: KillRig, tally: Tally, killed: bool) -> None:
    tally.iterations += 1
    tally.faults += int(killed)
    problems = integrity(rig.engine)
    if problems:
        tally.wrong += 1
        tally.notes.append(f"integrity_check: {problems[:3]}")


def kill_backfill(rig: KillRig) -> Tally:
    """kill -9 during `candlecast backfill`; the next backfill completes it exactly."""
    reset_candles(rig.engine)
    tally = Tally()
    _, killed = rig.kill_during(["backfill", "--days", "30"], max_delay=4.0)
    rig.run(["backfill", "--days", "30"])
    now = rig.fake.clock.now_ms()
    first, last = closed_window(now, 30)
    tally.add(check_exact(rig.engine, rig.fake.market, first=first, last=last, exchange_now=now))
    tally.iterations -= 1
    _finish(rig, tally, killed)
    return tally


def rewind_near_the_end(fake: FakeExchange, room_days: int = 6) -> bool:
    """Moves the exchange's clock back 30 days when the replayed data is about to run out;
    True if it did (the caller then starts from an empty store)."""
    end = fake.market.open_times[-1]
    now = fake.clock.now_ms()
    if now + room_days * DAY_MS < end:
        return False
    fake.clock.set(now_ms=now - 30 * DAY_MS)
    return True


def kill_ingest(rig: KillRig) -> Tally:
    """kill -9 during `candlecast ingest` after the exchange moved on; the next ingest heals."""
    tally = Tally()
    with rig.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(candles)).scalar_one()
    if stored and rewind_near_the_end(rig.fake):
        reset_candles(rig.engine)
        stored = 0
    if not stored:
        rig.backfill_here()
    rig.fake.clock.advance(rig.rng.randint(1, 4) * DAY_MS)
    _, killed = rig.kill_during(["ingest"], max_delay=3.0)
    rig.run(["ingest"])
    now = rig.fake.clock.now_ms()
    first, last = closed_window(now, 30)
    tally.add(check_exact(rig.engine, rig.fake.market, first=first, last=last, exchange_now=now))
    tally.iterations -= 1
    _finish(rig, tally, killed)
    return tally


def write_dump(rig: KillRig, *, first: int, count: int) -> Path:
    """A data.binance.vision-style monthly dump (12 headerless columns) of real candles."""
    path = rig.folder / "BTCUSDT-5m-dump.csv"
    start = rig.fake.market.index_at_or_after(first)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for row in rig.fake.market.rows[start : start + count]:
            writer.writerow(kline_array(row))
    return path


def kill_import(rig: KillRig) -> Tally:
    """kill -9 during `candlecast import`: the file lands whole or not at all, then re-import."""
    reset_candles(rig.engine)
    tally = Tally()
    market = rig.fake.market
    first = market.open_times[0] + rig.rng.randint(0, 30) * DAY_MS
    count = 8_640  # a month of 5m candles
    path = write_dump(rig, first=first, count=count)
    last = first + (count - 1) * STEP
    _, killed = rig.kill_during(["import", str(path)], max_delay=5.0)
    with rig.engine.connect() as connection:
        landed = connection.execute(select(func.count()).select_from(candles)).scalar_one()
    if landed not in (0, count):
        tally.partial += 1
        tally.notes.append(f"a killed import left {landed} of {count} candles")
    rig.run(["import", str(path)])
    tally.add(check_exact(rig.engine, market, first=first, last=last))
    tally.iterations -= 1
    _finish(rig, tally, killed)
    return tally


def champion_loads(engine: Engine) -> int:
    """The champion's id, after loading its bundle from the registry (hash-checked)."""
    with engine.connect() as connection:
        record = registry.champion(connection, symbol=SYMBOL, interval=INTERVAL)
    if record is None:
        raise AssertionError("no champion")
    modeling.load_bundle(engine, record.id)
    return record.id


def every_model_loads(engine: Engine) -> list[str]:
    """Models whose artifact is missing or corrupt (a half-written model)."""
    with engine.connect() as connection:
        ids = list(connection.execute(select(models.c.id)).scalars())
    broken = []
    for model_id in ids:
        try:
            modeling.load_bundle(engine, model_id)
        except Exception as exc:  # any failure to load is a half-written model
            broken.append(f"model {model_id}: {exc}")
    return broken


def kill_train(rig: KillRig) -> Tally:
    """kill -9 during `candlecast train --force`: the champion keeps loading and serving."""
    tally = Tally()
    with rig.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(candles)).scalar_one()
        has_champion = registry.champion(connection, symbol=SYMBOL, interval=INTERVAL)
    # The set-up runs in this process: only the killed command needs its own.
    if not stored:
        rig.backfill_here()
    if has_champion is None:
        modeling.train_model(
            rig.engine, symbol=SYMBOL, interval=INTERVAL, days=rig.train_days, force=True
        )
    before = champion_loads(rig.engine)
    _, killed = rig.kill_during(["train", "--force"], max_delay=8.0)
    try:
        after = champion_loads(rig.engine)
    except Exception as exc:
        tally.wrong += 1
        tally.notes.append(f"the champion does not load after a kill: {exc}")
        after = before
    if after < before:
        tally.wrong += 1
        tally.notes.append(f"champion went back from {before} to {after}")
    broken = every_model_loads(rig.engine)
    tally.partial += len(broken)
    tally.notes.extend(broken)
    _finish(rig, tally, killed)
    return tally


SCENARIOS: dict[str, Callable[[KillRig], Tally]] = {
    "backfill": kill_backfill,
    "ingest": kill_ingest,
    "import": kill_import,
    "train": kill_train,
}
