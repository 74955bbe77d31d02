"""Forecast metrics: one implementation of each, shared by training, walk-forward and the ledger.

All functions ignore pairs where either side is NaN and return NaN for an empty input.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ECE_BINS: Final = 10
_Z95: Final = 1.959963984540054
_PROB_EPS: Final = 1e-15


def _pair(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(y_true, dtype="float64").ravel()
    p = np.asarray(y_pred, dtype="float64").ravel()
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: {t.shape} vs {p.shape}")
    keep = np.isfinite(t) & np.isfinite(p)
    return t[keep], p[keep]


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p))) if t.size else math.nan


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((t - p) ** 2))) if t.size else math.nan


def mape(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute percentage error in percent; pairs with a zero actual are skipped."""
    t, p = _pair(y_true, y_pred)
    keep = t != 0
    if not keep.any():
        return math.nan
    return float(100.0 * np.mean(np.abs((t[keep] - p[keep]) / t[keep])))


def smape(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Symmetric MAPE in percent: mean of 2|p - t| / (|t| + |p|); 0/0 pairs count as 0."""
    t, p = _pair(y_true, y_pred)
    if not t.size:
        return math.nan
    denom = np.abs(t) + np.abs(p)
    ratio = np.divide(2.0 * np.abs(p - t), denom, out=np.zeros_like(t), where=denom > 0)
    return float(100.0 * np.mean(ratio))


def skill(model_error: float, baseline_error: float) -> float:
    """1 - model/baseline: positive beats the baseline, 0 ties it, negative is worse."""
    if not (math.isfinite(model_error) and math.isfinite(baseline_error)) or baseline_error <= 0:
        return math.nan
    return 1.0 - model_error / baseline_error


def wilson_interval(hits: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (95% by default)."""
    if n <= 0:
        return (math.nan, math.nan)
    phat = hits / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def brier(outcome: npt.ArrayLike, prob: npt.ArrayLike) -> float:
    """Mean squared difference between the 0/1 outcome and the forecast probability."""
    y, p = _pair(outcome, prob)
    return float(np.mean((p - y) ** 2)) if y.size else math.nan


def log_loss(outcome: npt.ArrayLike, prob: npt.ArrayLike) -> float:
    """Mean negative log-likelihood (natural log); probabilities clipped away from 0 and 1."""
    y, p = _pair(outcome, prob)
    if not y.size:
        return math.nan
    p = np.clip(p, _PROB_EPS, 1 - _PROB_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ece(outcome: npt.ArrayLike, prob: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error over `bins` equal-width bins of the forecast probability.

    Sum over bins of (share of forecasts in the bin) * |mean outcome - mean forecast|; the last
    bin is closed so a probability of exactly 1 is counted.
    """
    y, p = _pair(outcome, prob)
    if not y.size:
        return math.nan
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.mean() * abs(float(y[sel].mean()) - float(p[sel].mean()))
    return float(total)


def wda(realized_return: npt.ArrayLike, predicted_up: npt.ArrayLike) -> float:
    """Weighted directional accuracy: share of |realized return| on correctly called candles.

    A candle is called "up" when predicted_up is true and counts as a hit when its return is > 0;
    called "down" it is a hit when the return is <= 0 (a flat candle is not up). Big moves weigh
    more than small ones, so a forecaster right only on noise scores near 0.5 or below.
    """
    r, up = _pair(realized_return, predicted_up)
    weight = np.abs(r)
    if not r.size or weight.sum() == 0:
        return math.nan
    hits = np.where(up > 0.5, r > 0, r <= 0)
    return float(np.sum(weight * hits) / np.sum(weight))


def accuracy(outcome: npt.ArrayLike, predicted_up: npt.ArrayLike) -> tuple[float, int, int]:
    """Returns (accuracy, hits, n) of 0/1 calls against 0/1 outcomes."""
    y, up = _pair(outcome, predicted_up)
    if not y.size:
        return (math.nan, 0, 0)
    hits = int(np.sum((up > 0.5) == (y > 0.5)))
    return (hits / y.size, hits, int(y.size))


def bootstrap_skill_ci(
    model_error: npt.ArrayLike,
    baseline_error: npt.ArrayLike,
    *,
    block: int,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Paired block-bootstrap interval of skill = 1 - sum|model| / sum|baseline|.

    Errors are paired per candle and resampled in non-overlapping blocks of `block` consecutive
    candles (volatility clusters, so single candles are not independent). Deterministic for a
    seed. (nan, nan) with fewer than two blocks.
    """
    m, b = _pair(model_error, baseline_error)
    m, b = np.abs(m), np.abs(b)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    ids = np.arange(m.size) // block
    blocks = int(ids[-1]) + 1 if m.size else 0
    if blocks < 2:
        return (math.nan, math.nan)
    sum_m = np.bincount(ids, weights=m)
    sum_b = np.bincount(ids, weights=b)
    draws = np.random.default_rng(seed).integers(0, blocks, size=(resamples, blocks))
    den = sum_b[draws].sum(axis=1)
    skills = 1.0 - sum_m[draws].sum(axis=1) / np.where(den > 0, den, np.nan)
    tail = (1.0 - level) / 2
    lo, hi = np.nanquantile(skills, [tail, 1.0 - tail])
    return (float(lo), float(hi))
