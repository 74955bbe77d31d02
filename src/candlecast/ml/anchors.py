"""Classical volatility anchors: EWMA range and HAR-levels, with a smoothed time-of-day factor.

Both forecast the next candle's range relative to the last close (the target y_range) and split
it into a high and a low with MAE-optimal fractions. Every fitted quantity (the time-of-day
profile, the HAR coefficients, the EWMA scale, the split fractions) is fitted once on the rows it
is given (the training window) and then applied unchanged, so the anchors are strictly causal:
the forecast for row t reads candles up to t and constants fitted before the forecast period.

- Time of day: per slot of the day, the mean range relative to its UTC day's mean range
  (removing volatility regimes), smoothed over the `per_hour` candles around the same time of day
  (12 candles at 5m), times a minute-of-hour profile (candles at :00, :15, :30, :45 are larger).
  Raw per-slot means are too noisy to help (docs/model.md).
- EWMA: an exponentially weighted mean of the deseasonalised range (half-life EWMA_HALF_LIFE
  candles) times the target slot's factor, times one MAE-optimal scale.
- HAR-levels: a median (LAD) regression of the deseasonalised next range on the means of the last
  1, 3, 6, 12, 72 and 288 deseasonalised ranges, the last absolute return and the factor itself,
  weighted so that it minimises the MAE of the range in price units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from candlecast.ml.lad import lad_fit, weighted_median

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
HAR_WINDOWS: Final = (1, 3, 6, 12, 72, 288)
EWMA_HALF_LIFE: Final = 2.5
HAR_INPUTS: Final = (*(f"har_mean_{w}" for w in HAR_WINDOWS), "har_abs_ret", "tod_factor")
# Features the gradient-boosted models receive on top of FEATURE_NAMES: the anchors' inputs and
# their forecasts, so a tree only has to learn what the anchor misses.
ANCHOR_FEATURES: Final = (*HAR_INPUTS, "har_range", "ewma_range")
ANCHOR_TARGETS: Final = ("high", "low", "range")
_EPS: Final = 1e-12


def relative_range(grid: pd.DataFrame) -> pd.Series:
    """(high - low) / previous close, the unit of y_range; the own close after a gap."""
    prev = grid["close"].shift(1)
    rel = (grid["high"] - grid["low"]) / prev
    return rel.fillna((grid["high"] - grid["low"]) / grid["close"])


def _slots(times: np.ndarray, step: int) -> np.ndarray:
    return np.asarray((times % DAY_MS) // step, dtype=np.int64)


def fit_time_of_day(times: np.ndarray, rel: np.ndarray, step: int) -> np.ndarray:
    """The smoothed time-of-day factor per slot of the day (mean 1); ones when undefined.

    `times` are the candles' open times and `rel` their relative ranges (training rows only).
    """
    per_day = max(1, DAY_MS // step)
    per_hour = max(1, HOUR_MS // step)
    ok = np.isfinite(rel) & (rel > 0)
    if per_day < 2 or ok.sum() < per_day:
        return np.ones(per_day)
    t, r = times[ok], rel[ok]
    day = t // DAY_MS
    # Each range relative to its own day's mean: a volatile week then weighs like a quiet one.
    _, inverse = np.unique(day, return_inverse=True)
    day_mean = np.bincount(inverse, weights=r) / np.bincount(inverse)
    norm = r / day_mean[inverse]
    slot = _slots(t, step)
    sums = np.bincount(slot, weights=norm, minlength=per_day)
    counts = np.bincount(slot, minlength=per_day)
    raw = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    raw = np.where(np.isfinite(raw), raw, np.nanmean(raw))
    # Hour-of-day profile: circular mean over the per_hour slots centred on each slot.
    kernel = np.ones(per_hour) / per_hour
    padded = np.concatenate([raw[-per_hour:], raw, raw[:per_hour]])
    smooth = np.convolve(padded, kernel, mode="same")[per_hour:-per_hour]
    if per_hour > 1:
        minute = np.arange(per_day) % per_hour
        ratio = raw / smooth
        moh = np.bincount(minute, weights=ratio) / np.bincount(minute)
        smooth = smooth * (moh / moh.mean())[minute]
    factor = smooth / smooth.mean()
    return np.asarray(np.where(np.isfinite(factor) & (factor > 0), factor, 1.0))


@dataclass(frozen=True, slots=True)
class Anchors:
    """Fitted anchors; `to_dict`/`from_dict` keep them JSON-serialisable inside the bundle."""

    step: int
    tod: np.ndarray
    har_coef: np.ndarray
    ewma_scale: float
    har_split: tuple[float, float]
    ewma_split: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists of floats)."""
        return {
            "step": self.step,
            "tod": [float(x) for x in self.tod],
            "har_coef": [float(x) for x in self.har_coef],
            "har_inputs": list(HAR_INPUTS),
            "ewma_scale": self.ewma_scale,
            "ewma_half_life": EWMA_HALF_LIFE,
            "har_split": list(self.har_split),
            "ewma_split": list(self.ewma_split),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Anchors:
        """Restores to_dict's output."""
        hs, es = doc["har_split"], doc["ewma_split"]
        return cls(
            step=int(doc["step"]),
            tod=np.asarray(doc["tod"], dtype="float64"),
            har_coef=np.asarray(doc["har_coef"], dtype="float64"),
            ewma_scale=float(doc["ewma_scale"]),
            har_split=(float(hs[0]), float(hs[1])),
            ewma_split=(float(es[0]), float(es[1])),
        )

    def inputs(self, grid: pd.DataFrame) -> pd.DataFrame:
        """HAR inputs and the deseasonalised EWMA level of every grid row (causal)."""
        return anchor_inputs(grid, self.tod, self.step)

    def forecasts(self, grid: pd.DataFrame) -> pd.DataFrame:
        """ANCHOR_FEATURES plus har_y_{high,low,range} and ewma_y_{...} in target space."""
        x = self.inputs(grid)
        out = x[list(HAR_INPUTS)].copy()
        har = np.maximum(_design(x) @ self.har_coef, 0.0) * x["tod_factor"].to_numpy()
        ewma = self.ewma_scale * x["ewma_level"].to_numpy() * x["tod_factor"].to_numpy()
        out["har_range"] = har
        out["ewma_range"] = ewma
        for label, rng, split in (("har", har, self.har_split), ("ewma", ewma, self.ewma_split)):
            high, low = split_range(rng, split)
            out[f"{label}_y_high"] = high
            out[f"{label}_y_low"] = low
            out[f"{label}_y_range"] = rng
        return out


def anchor_inputs(grid: pd.DataFrame, tod: np.ndarray, step: int) -> pd.DataFrame:
    """Causal anchor inputs of each grid row t: deseasonalised range means, |return|, factor.

    tod_factor is the factor of the candle being forecast (t + step), known in advance.
    """
    times = grid.index.to_numpy(dtype=np.int64)
    rel = relative_range(grid)
    own = pd.Series(tod[_slots(times, step)], index=grid.index)
    des = rel / own
    f: dict[str, pd.Series] = {}
    for w in HAR_WINDOWS:
        # Tolerates gaps: the mean of whatever candles the last w intervals hold.
        f[f"har_mean_{w}"] = des.rolling(w, min_periods=1).mean()
    close = grid["close"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ret = np.abs(np.log(close / np.concatenate([[np.nan], close[:-1]])))
    ret = pd.Series(log_ret, index=grid.index)
    f["har_abs_ret"] = (ret / own).fillna(0.0)
    f["tod_factor"] = pd.Series(tod[_slots(times + step, step)], index=grid.index)
    f["ewma_level"] = des.ewm(halflife=EWMA_HALF_LIFE, ignore_na=True).mean()
    out = pd.DataFrame(f, index=grid.index)
    return out.replace([np.inf, -np.inf], np.nan)


def _design(x: pd.DataFrame) -> np.ndarray:
    cols = x[list(HAR_INPUTS)].to_numpy(dtype="float64")
    return np.column_stack([np.ones(len(x)), cols])


def split_range(rng: np.ndarray, split: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(y_high, y_low) of a relative range forecast split as C·(1 + up·R), C·(1 - down·R)."""
    up, down = split
    r = np.asarray(rng, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log1p(up * r), -np.log1p(-np.minimum(down * r, 0.5))


def fit_split(y_high: np.ndarray, y_low: np.ndarray, rng: np.ndarray) -> tuple[float, float]:
    """MAE-optimal shares of a range forecast above and below the last close.

    With a = h1/C - 1 the move above the close, |a - f·R| summed over rows is minimised by the
    median of a/R weighted by R (likewise below). Returns (up, down); (0.5, 0.5) when undefined.
    """
    r = np.asarray(rng, dtype="float64")
    above = np.expm1(np.asarray(y_high, dtype="float64"))
    below = -np.expm1(-np.asarray(y_low, dtype="float64"))
    ok = np.isfinite(r) & (r > _EPS) & np.isfinite(above) & np.isfinite(below)
    if not ok.any():
        return (0.5, 0.5)
    up = weighted_median(above[ok] / r[ok], r[ok])
    down = weighted_median(below[ok] / r[ok], r[ok])
    return (float(up), float(down))


def fit_anchors(
    grid: pd.DataFrame,
    rows: np.ndarray,
    targets: pd.DataFrame,
    step: int,
    *,
    price: np.ndarray | None = None,
) -> Anchors:
    """Fits both anchors on the grid positions `rows` (training rows only).

    `targets` is grid_targets(grid) (y_high, y_low, y_range per grid row); `price` the last close
    of each row, used to weight the LAD fit so that it minimises the range MAE in price units.
    """
    times = grid.index.to_numpy(dtype=np.int64)
    rel = relative_range(grid).to_numpy()
    tod = fit_time_of_day(times[rows], rel[rows], step)
    x = anchor_inputs(grid, tod, step)
    y = targets["y_range"].to_numpy(dtype="float64")
    factor = x["tod_factor"].to_numpy()
    close = targets["last_close"].to_numpy() if price is None else price
    design = _design(x)
    ok = np.zeros(len(grid), dtype=bool)
    ok[rows] = True
    ok &= np.isfinite(y) & np.isfinite(design).all(axis=1) & np.isfinite(close)
    if ok.sum() <= design.shape[1]:
        raise ValueError(f"too few complete rows to fit the HAR anchor: {int(ok.sum())}")
    # |y - tod·Xb| = tod·|y/tod - Xb|: a weighted LAD on the deseasonalised target.
    w = factor[ok] * close[ok] / np.mean(close[ok])
    coef = lad_fit(design[ok], y[ok] / factor[ok], w)
    har = np.maximum(design @ coef, 0.0) * factor
    level = x["ewma_level"].to_numpy() * factor
    good = ok & np.isfinite(level) & (level > _EPS)
    scale = weighted_median(y[good] / level[good], level[good] * close[good])
    yh, yl = targets["y_high"].to_numpy(), targets["y_low"].to_numpy()
    return Anchors(
        step=step,
        tod=tod,
        har_coef=coef,
        ewma_scale=float(scale),
        har_split=fit_split(yh[ok], yl[ok], har[ok]),
        ewma_split=fit_split(yh[good], yl[good], scale * level[good]),
    )
