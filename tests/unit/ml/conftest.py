"""Fixtures for the ml unit tests: synthetic candle frames and the shared real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.shared_data import MAIN_CSV, shared_data_path

STEP = 300_000
START = 1_751_155_200_000  # 2025-06-29T00:00:00Z


def synthetic_frame(rows: int, seed: int = 0, *, taker: bool = True) -> pd.DataFrame:
    """A random-walk candle frame in the store's contract, with volatility clustering."""
    rng = np.random.default_rng(seed)
    vol = 0.001 * np.exp(np.cumsum(rng.normal(0, 0.05, rows)) * 0.2)
    close = 100_000 * np.exp(np.cumsum(rng.normal(0, 1, rows) * vol))
    open_ = np.concatenate([[100_000.0], close[:-1]])
    top = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 1, rows)) * vol)
    bottom = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 1, rows)) * vol)
    volume = rng.lognormal(2, 0.5, rows)
    frame = pd.DataFrame(
        {
            "open_time": START + STEP * np.arange(rows, dtype=np.int64),
            "open": open_,
            "high": top,
            "low": bottom,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": rng.integers(100, 1000, rows).astype("float64"),
            "taker_buy_base": volume * rng.uniform(0.3, 0.7, rows) if taker else np.nan,
            "taker_buy_quote": np.nan,
        }
    )
    return frame


def load_candles(path: Path) -> pd.DataFrame:
    """Reads a shared-data CSV into the store's frame contract (open_time as epoch ms)."""
    raw = pd.read_csv(path)
    times = pd.to_datetime(raw["open_time"], utc=True).dt.as_unit("ms").astype("int64")
    frame = raw.assign(open_time=times)
    for col in ("quote_volume", "trades", "taker_buy_base", "taker_buy_quote"):
        if col not in frame.columns:
            frame[col] = np.nan
    cols = ["open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades"]
    cols += ["taker_buy_base", "taker_buy_quote"]
    return frame[cols].astype({c: "float64" for c in cols[1:]})


FAST_PARAMS = {"n_estimators": 30, "classifier_estimators": 20, "min_data_in_leaf": 50}


@pytest.fixture(scope="session")
def frame_6d() -> pd.DataFrame:
    return synthetic_frame(6 * 288, seed=1)


@pytest.fixture(scope="session")
def real_frame() -> pd.DataFrame:
    return load_candles(shared_data_path(MAIN_CSV))
