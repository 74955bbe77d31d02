"""Naive forecasts that every model figure is compared against.

- open, close: persistence, next = last close. The next open is the last close to within a cent
  on Binance, and for the close persistence is the random-walk forecast that is hard to beat.
- high, low, range: the median of the last NAIVE_WINDOW (12 = one hour of 5m) candles' excursions
  above and below their previous close, and of their range relative to it, applied to the last
  close. Medians track the current volatility regime and are the MAE-optimal constant; they beat
  "last range centred on the last close" by about 14% on range, so this is a strong-ish naive
  rather than a straw man. The window was fixed a priori, not tuned.
- direction: climatology, the up-frequency of the training window.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from candlecast.ml.features import NAIVE_WINDOW, naive_excursions, to_grid
from candlecast.ml.targets import reconstruct

BASELINE_NAMES: Final[dict[str, str]] = {
    "open": "persistence",
    "close": "persistence",
    "high": f"median_excursion_{NAIVE_WINDOW}",
    "low": f"median_excursion_{NAIVE_WINDOW}",
    "range": f"median_range_{NAIVE_WINDOW}",
    "direction": "climatology",
}


def baseline_returns(frame: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """Returns the naive forecasts as y_open, y_high, y_low, y_close, y_range (see targets)."""
    grid = to_grid(frame, interval_ms)
    naive = naive_excursions(grid, NAIVE_WINDOW)
    out = pd.DataFrame(
        {
            "y_open": 0.0,
            "y_high": naive["exc_up"],
            "y_low": naive["exc_down"],
            "y_close": 0.0,
            "y_range": naive["hl_rel"],
        },
        index=grid.index,
    )
    out = out.loc[frame["open_time"].to_numpy(dtype=np.int64)]
    out.index = frame.index
    return out


def baseline_levels(last_close: pd.Series, returns: pd.DataFrame) -> pd.DataFrame:
    """Returns base_{open,high,low,close,range}_next price levels from baseline returns."""
    levels = reconstruct(
        last_close,
        returns["y_open"],
        returns["y_high"],
        returns["y_low"],
        returns["y_close"],
        returns["y_range"],
    )
    levels.columns = [f"base_{c}" for c in levels.columns]
    levels.index = last_close.index
    return levels
