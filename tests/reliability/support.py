"""What every reliability scenario shares: the ground truth, the exactness check, the tallies.

Ground truth is the real candles the fake exchange replays (tests/fake_exchange, from
../shared/data). "Exact" means the stored candles equal the truth field for field (as decimal
strings), with none lost, none duplicated and none partial (still open when stored).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, RowMapping, func, select

from candlecast.domain import format_decimal
from candlecast.store.candle_rows import VALUE_NAMES
from candlecast.store.tables import candles
from tests.fake_exchange.market import Market, Row

ITERATIONS_ENV = "CANDLECAST_RELIABILITY_ITERATIONS"
REPO = Path(__file__).resolve().parents[2]
STEP = 300_000
DAY_MS = 86_400_000
FIELDS = VALUE_NAMES


def iterations(default: int) -> int:
    """How many iterations a repeated scenario runs: small in CI, raised by the benchmark."""
    raw = os.environ.get(ITERATIONS_ENV, "").strip()
    return max(1, int(raw)) if raw else default


@dataclass
class Tally:
    """The figures every scenario reports."""

    iterations: int = 0
    checked: int = 0
    lost: int = 0
    duplicated: int = 0
    partial: int = 0
    wrong: int = 0
    # Faults injected (requests failed, messages doubled, connections cut, processes killed).
    faults: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Accumulates another tally (iterations included)."""
        self.iterations += other.iterations
        self.checked += other.checked
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.partial += other.partial
        self.wrong += other.wrong
        self.faults += other.faults
        self.notes.extend(other.notes)

    @property
    def exact(self) -> bool:
        """No candle lost, duplicated, partial or different from the truth."""
        return not (self.lost or self.duplicated or self.partial or self.wrong)

    def __str__(self) -> str:
        head = (
            f"checked={self.checked} lost={self.lost} duplicated={self.duplicated} "
            f"partial={self.partial} wrong={self.wrong} faults={self.faults}"
        )
        return head + ("; " + "; ".join(self.notes[:5]) if self.notes else "")


def truth_values(row: Row) -> tuple[str, ...]:
    """A replayed candle's fields as the exchange's strings."""
    return (
        row.open,
        row.high,
        row.low,
        row.close,
        row.volume,
        str(row.close_time),
        row.quote_volume,
        str(row.trades),
        row.taker_buy_base,
        row.taker_buy_quote,
    )


def stored_values(record: RowMapping) -> tuple[str, ...]:
    """A stored candle's fields as decimal strings."""
    out: list[str] = []
    for name in FIELDS:
        value = record[name]
        out.append(str(value) if isinstance(value, int) else format_decimal(value))
    return tuple(out)


def _same(stored: tuple[str, ...], truth: tuple[str, ...]) -> bool:
    # PostgreSQL NUMERIC keeps the exchange's scale and SQLite keeps its string, so equal
    # strings are required; "0" and "0.00000000" for an absent column are the one exception.
    return all(a == b or (_is_zero(a) and _is_zero(b)) for a, b in zip(stored, truth, strict=True))


def _is_zero(text: str) -> bool:
    return text.replace("0", "").replace(".", "") == ""


def check_exact(
    engine: Engine,
    market: Market,
    *,
    first: int,
    last: int,
    exchange_now: int | None = None,
) -> Tally:
    """Compares stored candles with open_time in [first, last] to the truth."""
    tally = Tally(iterations=1)
    truth = {
        row.open_time: row
        for row in market.rows[market.index_at_or_after(first) : market.visible_end(last)]
    }
    where = (
        candles.c.symbol == market.symbol,
        candles.c.interval == market.interval,
        candles.c.open_time.between(first, last),
    )
    with engine.connect() as connection:
        rows = connection.execute(select(candles).where(*where)).mappings().all()
        dupes = connection.execute(
            select(func.count()).select_from(
                select(candles.c.open_time)
                .where(*where)
                .group_by(candles.c.open_time)
                .having(func.count() > 1)
                .subquery()
            )
        ).scalar_one()
        if exchange_now is not None:
            # A candle stored before it closed is partial whatever its values.
            tally.partial += int(
                connection.execute(
                    select(func.count())
                    .select_from(candles)
                    .where(
                        candles.c.symbol == market.symbol,
                        candles.c.interval == market.interval,
                        candles.c.close_time >= exchange_now,
                    )
                ).scalar_one()
            )
    tally.duplicated = int(dupes)
    seen: set[int] = set()
    for record in rows:
        open_time = int(record["open_time"])
        seen.add(open_time)
        row = truth.get(open_time)
        if row is None:
            tally.wrong += 1
            tally.notes.append(f"stored candle {open_time} is not in the truth")
            continue
        tally.checked += 1
        stored = stored_values(record)
        if not _same(stored, truth_values(row)):
            # A stored candle whose volume is below the final one is a snapshot of an open
            # candle (partial); any other difference is simply wrong.
            if record["volume"] < type(record["volume"])(row.volume):
                tally.partial += 1
            else:
                tally.wrong += 1
            tally.notes.append(f"candle {open_time} differs: {stored} != {truth_values(row)}")
    missing = sorted(set(truth) - seen)
    tally.lost = len(missing)
    if missing:
        tally.notes.append(f"{len(missing)} lost, first {missing[0]}, last {missing[-1]}")
    return tally


def closed_window(now_ms: int, days: float) -> tuple[int, int]:
    """(first, last) open_time of the closed 5m candles in the last `days` of exchange time."""
    last = (now_ms - STEP) // STEP * STEP
    earliest = now_ms - int(days * DAY_MS)
    return -(-earliest // STEP) * STEP, last


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Polls until condition() holds; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def cli_environment(database_url: str, base_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `candlecast` subprocess against the fake exchange."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": database_url,
            "CANDLECAST_BINANCE_URL": base_url,
            "CANDLECAST_BINANCE_WS_URL": base_url.replace("http", "ws", 1),
            "CANDLECAST_HTTP_MAX_RETRIES": "4",
            "CANDLECAST_HTTP_TIMEOUT_SECONDS": "5",
            "CANDLECAST_API_TOKEN": "reliability-token-0123456789",
            "PYTHONPATH": str(REPO),
            **extra,
        }
    )
    return env


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Starts `candlecast ARGS` as its own process (output to cwd/cli.log)."""
    log = (cwd / "cli.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "candlecast.cli", *args],
        env=env,
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def cli_log(cwd: Path, chars: int = 3000) -> str:
    """The tail of the subprocesses' output, for failure messages."""
    path = cwd / "cli.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
