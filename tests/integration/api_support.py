"""Helpers for the API tests: real candles into the store, an app over them, a client."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import parse_iso_utc
from candlecast.runtime import Runtime
from candlecast.store import candle_rows
from candlecast.store import candles as store
from candlecast.store.db import write_transaction
from tests.shared_data import MAIN_CSV, shared_data_path

STEP = 300_000
DAY = 86_400_000
FIRST = parse_iso_utc("2025-08-01T00:00:00Z")
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def csv_rows(name: str, *, first: int, last: int) -> list[candle_rows.CandleRow]:
    """The 5m candles of a shared-data file with open_time in [first, last], as store rows."""
    rows: list[candle_rows.CandleRow] = []
    with shared_data_path(name).open(newline="") as handle:
        for row in csv.DictReader(handle):
            open_time = parse_iso_utc(row["open_time"])
            if first <= open_time <= last:
                prices = (row["open"], row["high"], row["low"], row["close"], row["volume"])
                rows.append((open_time, *prices, open_time + STEP - 1, None, None, None, None))
    return rows


@lru_cache(maxsize=1)
def _all_rows() -> tuple[candle_rows.CandleRow, ...]:
    return tuple(csv_rows(MAIN_CSV, first=FIRST - 2 * DAY, last=FIRST + 20 * DAY))


def load(engine: Engine, *, days: float, first: int = FIRST) -> int:
    """Stores `days` days of real candles from `first`; returns the last open_time stored."""
    last = first + int(days * DAY) - STEP
    rows = [row for row in _all_rows() if first <= row[0] <= last]
    with write_transaction(engine) as connection:
        store.upsert_candles(
            connection, symbol="BTCUSDT", interval="5m", rows=rows, source="file", fetched_at=0
        )
    return last


def client(
    engine: Engine,
    database_url: str,
    *,
    runtime: Runtime | None = None,
    clock: Callable[[], int] | None = None,
    trainer: Any = None,
    **settings: Any,
) -> TestClient:
    """A TestClient over an app on this engine; settings override the test defaults."""
    options: dict[str, Any] = {"database_url": database_url, "api_token": TOKEN, **settings}
    services = Services(settings=Settings(**options), engine=engine)
    app = create_app(services, runtime or Runtime(), trainer=trainer, clock=clock)
    return TestClient(app, raise_server_exceptions=False)
