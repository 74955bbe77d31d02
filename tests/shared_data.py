"""Locates ../shared/data; skips (or, in CI, fails) tests when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The main fixture: BTCUSDT 5m, 2025-06-29 to 2025-10-06, no gaps.
MAIN_CSV = "btcusdt-5m-2025-06-29_2025-10-06.csv"


def shared_data_dir() -> Path:
    """The shared data folder: $CANDLECAST_SHARED_DATA or <repo root>/../shared/data."""
    override = os.environ.get("CANDLECAST_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def shared_data_path(name: str) -> Path:
    """Path of one shared data file; skips the test if absent unless CI requires the data."""
    path = shared_data_dir() / name
    if path.is_file():
        return path
    reason = (
        f"shared data file {path} is missing; set CANDLECAST_SHARED_DATA to the folder "
        "holding the real candle CSVs"
    )
    if os.environ.get("CANDLECAST_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{reason} (CANDLECAST_REQUIRE_SHARED_DATA=1)", pytrace=False)
    pytest.skip(reason)
