"""pytest fixtures for the fake exchange; import them from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from candlecast.domain import parse_iso_utc
from tests.fake_exchange.server import FakeExchange
from tests.shared_data import MAIN_CSV, shared_data_path

__all__ = ["MAIN_CSV", "FakeExchangeFactory", "fake_exchange"]


class FakeExchangeFactory(Protocol):
    """Starts a fake exchange; it is stopped when the test ends."""

    def __call__(
        self,
        csv: str | Path = MAIN_CSV,
        *,
        start: str | int | None = None,
        speed: float = 1.0,
        **options: Any,
    ) -> FakeExchange: ...


@pytest.fixture
def fake_exchange() -> Iterator[FakeExchangeFactory]:
    """Factory: fake_exchange(csv=name-or-path, start=ISO-or-ms, speed=60, ws_update_ms=50)."""
    started: list[FakeExchange] = []

    def make(
        csv: str | Path = MAIN_CSV,
        *,
        start: str | int | None = None,
        speed: float = 1.0,
        **options: Any,
    ) -> FakeExchange:
        path = csv if isinstance(csv, Path) else shared_data_path(csv)
        start_ms = parse_iso_utc(start) if isinstance(start, str) else start
        fake = FakeExchange(csv_path=path, start_ms=start_ms, speed=speed, **options)
        started.append(fake.start())
        return fake

    yield make
    for fake in started:
        fake.stop()
