"""Next-candle targets in return space relative to the last close, and price reconstruction.

With C = close[t] and the next candle (o1, h1, l1, c1):
  y_open  = log(o1 / C)          y_close = log(c1 / C)
  y_high  = log(h1 / C)          y_low   = log(C / l1)
  y_range = (h1 - l1) / C        up      = 1 if c1 > C else 0
Each regressor fits the median (L1) of its own target, so every forecast is the MAE-optimal
point for that quantity. The pieces are then reconciled by `reconstruct`, which always yields
high >= max(open, close) >= min(open, close) >= low > 0 and range >= |close - open|.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from candlecast.ml.features import on_rows, to_grid

TARGETS: Final = ("open", "high", "low", "close", "range")
RETURN_COLUMNS: Final = tuple(f"y_{t}" for t in TARGETS)
LEVEL_COLUMNS: Final = tuple(f"{t}_next" for t in TARGETS)
# exp() of anything beyond this is not a 5-minute move; it keeps adversarial inputs finite.
MAX_ABS_LOG_RETURN: Final = 0.5


def build_targets(frame: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """Returns y_* returns, realized *_next levels, `up` and last_close for every row.

    A row whose next candle (open_time + interval) is missing gets NaN targets: the grid reindex
    puts a NaN row there instead of pairing the row with whatever candle comes next.
    """
    return on_rows(grid_targets(to_grid(frame, interval_ms)), frame)


def grid_targets(grid: pd.DataFrame) -> pd.DataFrame:
    """build_targets on a gap-filled grid (see features.to_grid), indexed by open_time."""
    c = grid["close"]
    nxt = grid[["open", "high", "low", "close"]].shift(-1)
    out = pd.DataFrame(index=grid.index)
    out["last_close"] = c
    out["y_open"] = np.log(nxt["open"] / c)
    out["y_high"] = np.log(nxt["high"] / c)
    out["y_low"] = np.log(c / nxt["low"])
    out["y_close"] = np.log(nxt["close"] / c)
    out["y_range"] = (nxt["high"] - nxt["low"]) / c
    up = (nxt["close"] > c).astype("float64")
    out["up"] = up.where(nxt["close"].notna() & c.notna())
    for name in ("open", "high", "low", "close"):
        out[f"{name}_next"] = nxt[name]
    out["range_next"] = nxt["high"] - nxt["low"]
    return out


def _clean(values: np.ndarray | pd.Series, *, nonnegative: bool = False) -> np.ndarray:
    arr = np.asarray(values, dtype="float64")
    # A non-finite prediction carries no information: treat it as "no move" (persistence).
    arr = np.where(np.isfinite(arr), arr, 0.0)
    arr = np.clip(arr, -MAX_ABS_LOG_RETURN, MAX_ABS_LOG_RETURN)
    return np.asarray(np.maximum(arr, 0.0)) if nonnegative else arr


def reconstruct(
    last_close: np.ndarray | pd.Series,
    y_open: np.ndarray | pd.Series,
    y_high: np.ndarray | pd.Series,
    y_low: np.ndarray | pd.Series,
    y_close: np.ndarray | pd.Series,
    y_range: np.ndarray | pd.Series,
) -> pd.DataFrame:
    """Turns predicted returns into consistent next-candle prices.

    Returns open_next, high_next, low_next, close_next, range_next. For any inputs (NaN, inf,
    negative wicks, huge values) and a positive last close: high >= max(open, close),
    low <= min(open, close), low > 0, range_next >= max(0, |close - open|). Rows whose last close
    is not a positive finite number get NaN everywhere: there is nothing to forecast from.
    """
    c = np.asarray(last_close, dtype="float64")
    valid = np.isfinite(c) & (c > 0)
    c_safe = np.where(valid, c, 1.0)
    open_ = c_safe * np.exp(_clean(y_open))
    close = c_safe * np.exp(_clean(y_close))
    high = np.maximum(c_safe * np.exp(_clean(y_high)), np.maximum(open_, close))
    low = np.minimum(c_safe * np.exp(-_clean(y_low)), np.minimum(open_, close))
    rng = c_safe * _clean(y_range, nonnegative=True)
    rng = np.maximum(rng, np.abs(close - open_))
    out = pd.DataFrame(
        {
            "open_next": open_,
            "high_next": high,
            "low_next": low,
            "close_next": close,
            "range_next": rng,
        }
    )
    out.loc[~valid, :] = np.nan
    return out
