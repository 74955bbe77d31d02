"""Causal features of closed candles, in return space.

Every feature of row t reads only rows t-FEATURE_WINDOW+1 .. t. Raw price levels are never
features: a tree fitted on levels cannot extrapolate past the prices it saw (the old system's
failure), while returns, ranges and volume ratios are roughly stationary.

Gaps: the frame is reindexed onto the full time grid before any window is computed, so a missing
candle is a NaN inside every window that spans it instead of silently joining two distant rows.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from candlecast.domain import INTERVAL_MS

FRAME_COLUMNS: Final = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
)
PRICE_COLUMNS: Final = ("open", "high", "low", "close")
OPTIONAL_COLUMNS: Final = ("quote_volume", "trades", "taker_buy_base", "taker_buy_quote")
# Another followed pair's candle at the same open_time (attach_reference), e.g. BTCUSDT's beside
# ETHUSDT's; absent unless the model uses a reference pair.
REFERENCE_COLUMNS: Final = ("ref_high", "ref_low", "ref_close")

RETURN_LAGS: Final = (1, 2, 3, 6, 12, 36, 144, 288)
VOL_WINDOWS: Final = (6, 24, 72, 288)
VOLUME_WINDOWS: Final = (12, 288)
NAIVE_WINDOW: Final = 12
# The longest span of rows, counting row t itself, that any feature of row t reads:
# a 288-row window of one-step returns needs 289 closes. Walk-forward purges this many rows.
FEATURE_WINDOW: Final = max(*RETURN_LAGS, *VOL_WINDOWS, *VOLUME_WINDOWS) + 1
DAY_MS: Final = 86_400_000
WEEK_MS: Final = 7 * DAY_MS
_EPS: Final = 1e-12


def _feature_names() -> tuple[str, ...]:
    names = [f"ret_{k}" for k in RETURN_LAGS]
    names += ["body", "hl", "wick_up", "wick_down", "gap_open", "tr"]
    names += [f"atr_{w}" for w in VOL_WINDOWS] + [f"rv_{w}" for w in VOL_WINDOWS]
    names += ["hl_over_atr_288", "atr_6_over_288", "atr_24_over_288", "rv_24_over_288"]
    names += ["exc_up_med", "exc_down_med", "hl_med", "hl_over_med", "hl_same_time_yesterday"]
    names += ["pos_hi_48", "pos_lo_48", "pos_hi_288", "pos_lo_288"]
    names += [f"vol_rel_{w}" for w in VOLUME_WINDOWS] + ["vol_trend", "trades_rel_288"]
    names += ["taker_ratio", "taker_ratio_12"]
    names += ["tod_sin", "tod_cos", "dow_sin", "dow_cos"]
    return tuple(names)


FEATURE_NAMES: Final = _feature_names()
# Cross-asset features of row t, from the reference pair's candles up to t-1 only (one candle
# behind): at the instant candle t closes, the reference's candle t closes too, and a forecast
# must not wait for another pair's stream. Measured, the lag costs nothing (docs/model.md).
REFERENCE_LAG: Final = 1
REFERENCE_FEATURES: Final = (
    "ref_ret_1",
    "ref_ret_3",
    "ref_hl",
    "ref_hl_6",
    "ref_hl_over_288",
    "ref_ret_1_minus_own",
)


def validate_frame(frame: pd.DataFrame, interval_ms: int) -> None:
    """Raises ValueError unless the frame follows the store's candle-frame contract."""
    missing = [c for c in ("open_time", *PRICE_COLUMNS, "volume") if c not in frame.columns]
    if missing:
        raise ValueError(f"candle frame lacks columns {missing}")
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    times = frame["open_time"].to_numpy(dtype=np.int64)
    if len(times) > 1:
        steps = np.diff(times)
        if (steps <= 0).any():
            raise ValueError("open_time must be strictly ascending without duplicates")
        if (steps % interval_ms).any():
            raise ValueError(f"open_time values are not on a {interval_ms} ms grid")


def to_grid(frame: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """Returns the candles reindexed onto every open_time from first to last; gaps are NaN rows."""
    validate_frame(frame, interval_ms)
    cols = [c for c in FRAME_COLUMNS if c != "open_time"]
    cols += [c for c in REFERENCE_COLUMNS if c in frame.columns]
    data = frame.reindex(columns=["open_time", *cols]).set_index("open_time")[cols]
    data = data.astype("float64")
    if len(data) == 0:
        return data
    first, last = int(data.index[0]), int(data.index[-1])
    grid = pd.Index(np.arange(first, last + interval_ms, interval_ms, dtype=np.int64))
    return data.reindex(grid)


def _roll_mean(s: pd.Series, w: int) -> pd.Series:
    # min_periods=w: any missing candle inside the window makes the feature NaN.
    return s.rolling(w, min_periods=w).mean()


def _log_ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    return pd.Series(np.log(a.to_numpy() / b.to_numpy()), index=a.index)


def naive_excursions(grid: pd.DataFrame, window: int = NAIVE_WINDOW) -> pd.DataFrame:
    """Rolling medians of the last `window` candles' excursions from the previous close.

    Columns: exc_up (log high/prev close), exc_down (log prev close/low), hl_rel ((high-low)/prev
    close). Windows are on the time grid and tolerate missing candles (min_periods=1): a median of
    whatever closed candles the last `window` intervals hold, never a row from outside them.
    """
    prev_close = grid["close"].shift(1)
    up = _log_ratio(grid["high"], prev_close)
    down = _log_ratio(prev_close, grid["low"])
    hl_rel = (grid["high"] - grid["low"]) / prev_close
    out = pd.DataFrame(
        {
            "exc_up": up.rolling(window, min_periods=1).median(),
            "exc_down": down.rolling(window, min_periods=1).median(),
            "hl_rel": hl_rel.rolling(window, min_periods=1).median(),
        }
    )
    # Right after a gap there is no previous close: fall back to the candle's own half-range.
    own = (_log_ratio(grid["high"], grid["low"]) / 2).clip(lower=0)
    out["exc_up"] = out["exc_up"].fillna(own)
    out["exc_down"] = out["exc_down"].fillna(own)
    out["hl_rel"] = out["hl_rel"].fillna((grid["high"] - grid["low"]) / grid["close"])
    return out


def grid_features(grid: pd.DataFrame, naive: pd.DataFrame | None = None) -> pd.DataFrame:
    """Computes FEATURE_NAMES on a gap-filled grid (see to_grid); NaN where history is missing.

    `naive` may pass in an already computed naive_excursions(grid) to avoid recomputing it.
    """
    o, h, low, c, v = (grid[k] for k in ("open", "high", "low", "close", "volume"))
    f: dict[str, pd.Series] = {}
    for k in RETURN_LAGS:
        f[f"ret_{k}"] = _log_ratio(c, c.shift(k))
    body_top = o.where(o >= c, c)
    body_bottom = o.where(o <= c, c)
    f["body"] = _log_ratio(c, o)
    f["hl"] = hl = _log_ratio(h, low)
    f["wick_up"] = _log_ratio(h, body_top)
    f["wick_down"] = _log_ratio(body_bottom, low)
    prev_c = c.shift(1)
    f["gap_open"] = _log_ratio(o, prev_c)
    # NaN comparisons are False, so a missing previous close makes the true range NaN.
    f["tr"] = tr = _log_ratio(h.where(h >= prev_c, prev_c), low.where(low <= prev_c, prev_c))
    r1 = f["ret_1"]
    for w in VOL_WINDOWS:
        f[f"atr_{w}"] = _roll_mean(tr, w)
        f[f"rv_{w}"] = np.sqrt(_roll_mean(r1 * r1, w))
    f["hl_over_atr_288"] = hl / (f["atr_288"] + _EPS)
    f["atr_6_over_288"] = f["atr_6"] / (f["atr_288"] + _EPS)
    f["atr_24_over_288"] = f["atr_24"] / (f["atr_288"] + _EPS)
    f["rv_24_over_288"] = f["rv_24"] / (f["rv_288"] + _EPS)
    if naive is None:
        naive = naive_excursions(grid)
    f["exc_up_med"] = naive["exc_up"]
    f["exc_down_med"] = naive["exc_down"]
    f["hl_med"] = naive["hl_rel"]
    f["hl_over_med"] = (h - low) / c / (naive["hl_rel"] + _EPS)
    # The candle one day before the one being forecast (t+1-288): intraday seasonality of range.
    f["hl_same_time_yesterday"] = hl.shift(287)
    for w in (48, 288):
        f[f"pos_hi_{w}"] = _log_ratio(c, h.rolling(w, min_periods=w).max())
        f[f"pos_lo_{w}"] = _log_ratio(c, low.rolling(w, min_periods=w).min())
    log_v = np.log(v + _EPS)
    for w in VOLUME_WINDOWS:
        f[f"vol_rel_{w}"] = log_v - np.log(_roll_mean(v, w) + _EPS)
    f["vol_trend"] = np.log(_roll_mean(v, 12) + _EPS) - np.log(_roll_mean(v, 288) + _EPS)
    trades = grid["trades"]
    f["trades_rel_288"] = np.log(trades + 1) - np.log(_roll_mean(trades, 288) + 1)
    # All-NaN when the source lacked taker columns; trees route NaN down a learned default branch.
    taker = grid["taker_buy_base"] / v.where(v > 0)
    f["taker_ratio"] = taker
    f["taker_ratio_12"] = _roll_mean(taker, 12)
    times = grid.index.to_numpy(dtype=np.int64)
    day_phase = 2 * np.pi * (times % DAY_MS) / DAY_MS
    # 1970-01-01 was a Thursday; the phase only needs to be consistent, not Monday-based.
    week_phase = 2 * np.pi * (times % WEEK_MS) / WEEK_MS
    f["tod_sin"] = pd.Series(np.sin(day_phase), index=grid.index)
    f["tod_cos"] = pd.Series(np.cos(day_phase), index=grid.index)
    f["dow_sin"] = pd.Series(np.sin(week_phase), index=grid.index)
    f["dow_cos"] = pd.Series(np.cos(week_phase), index=grid.index)
    out = pd.DataFrame(f, index=grid.index)[list(FEATURE_NAMES)]
    return out.replace([np.inf, -np.inf], np.nan).astype("float64")


def attach_reference(frame: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The frame with the reference pair's high, low and close of the same open_time as
    REFERENCE_COLUMNS (NaN where the reference has no candle); the frame's rows are unchanged."""
    ref = reference.loc[:, ["open_time", "high", "low", "close"]].rename(
        columns={"high": "ref_high", "low": "ref_low", "close": "ref_close"}
    )
    ref["open_time"] = ref["open_time"].astype("int64")
    own = frame.drop(columns=[c for c in REFERENCE_COLUMNS if c in frame.columns])
    joined = own.merge(ref, on="open_time", how="left", validate="one_to_one")
    joined.index = frame.index
    return joined


def reference_features(grid: pd.DataFrame) -> pd.DataFrame:
    """REFERENCE_FEATURES on a gap-filled grid; all NaN when the grid has no reference columns.

    Row t reads the reference's candles t-REFERENCE_LAG and earlier, never candle t itself.
    """
    if not all(c in grid.columns for c in REFERENCE_COLUMNS):
        return pd.DataFrame(np.nan, index=grid.index, columns=list(REFERENCE_FEATURES))
    h, low, c = (grid[k] for k in REFERENCE_COLUMNS)
    hl = _log_ratio(h, low)
    ret_1 = _log_ratio(c, c.shift(1))
    own_ret_1 = _log_ratio(grid["close"], grid["close"].shift(1))
    f = {
        "ref_ret_1": ret_1,
        "ref_ret_3": _log_ratio(c, c.shift(3)),
        "ref_hl": hl,
        "ref_hl_6": _roll_mean(hl, 6),
        "ref_hl_over_288": hl / (_roll_mean(hl, 288) + _EPS),
        # The reference's move minus the pair's own over the same candle: a lead-lag gap.
        "ref_ret_1_minus_own": ret_1 - own_ret_1,
    }
    out = pd.DataFrame(f, index=grid.index).shift(REFERENCE_LAG)[list(REFERENCE_FEATURES)]
    return out.replace([np.inf, -np.inf], np.nan).astype("float64")


def build_features(frame: pd.DataFrame, interval_ms: int = INTERVAL_MS["5m"]) -> pd.DataFrame:
    """Returns FEATURE_NAMES for every row of the frame (same index), from rows at or before it."""
    return on_rows(grid_features(to_grid(frame, interval_ms)), frame)


def on_rows(grid_values: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Selects the frame's rows from a grid-indexed result and gives them the frame's index."""
    out = grid_values.loc[frame["open_time"].to_numpy(dtype=np.int64)]
    out.index = frame.index
    return out
