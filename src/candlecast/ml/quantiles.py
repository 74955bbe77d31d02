"""Quantile forecasts of the next close, high, low and range, and their scoring.

Conformal calibration of scaled residuals: on the validation rows (never fitted on), the residual
of each target's point forecast in return space is divided by the forecast range (the
volatility scale: it widens the distribution in volatile hours), and the finite-sample conformal
order statistics of these scores give one offset per level. A quantile forecast is then
point + range forecast x offset. Offsets are sorted by level, so quantiles are monotone.

Baseline for pinball loss and CRPS: a Gaussian around the EWMA anchor's point forecast (the last
close for the close) with an EWMA (RiskMetrics, lambda 0.94) standard deviation of that point
forecast's past errors, strictly from candles that closed before the forecast.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import pandas as pd

LEVELS: Final = (0.025, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.975)
# Central intervals whose coverage is reported: level -> (lower, upper) quantile levels.
INTERVALS: Final = {0.5: (0.25, 0.75), 0.8: (0.10, 0.90), 0.9: (0.05, 0.95), 0.95: (0.025, 0.975)}
QUANTILE_TARGETS: Final = ("close", "high", "low", "range")
RISKMETRICS_ALPHA: Final = 0.06
_MIN_SCALE: Final = 1e-6


def column(target: str, level: float) -> str:
    """Prediction column of one quantile, in per mille: close_q050 (5%), range_q975 (97.5%)."""
    return f"{target}_q{round(level * 1000):03d}"


QUANTILE_COLUMNS: Final = tuple(column(t, q) for t in QUANTILE_TARGETS for q in LEVELS)
GAUSS_COLUMNS: Final = tuple(f"base_gauss_sd_{t}" for t in QUANTILE_TARGETS)


def conformal_offsets(y: np.ndarray, point: np.ndarray, scale: np.ndarray) -> list[float]:
    """Per level of LEVELS, the conformal quantile of (y - point) / scale.

    Upper levels take the ceil((n + 1) q)-th smallest score and lower levels the
    floor((n + 1) q)-th, so each one-sided quantile has at least its nominal coverage
    (split conformal; Romano et al. 2019 for the scaled form).
    """
    s = np.asarray(scale, dtype="float64")
    scores = (np.asarray(y, dtype="float64") - point) / np.maximum(s, _MIN_SCALE)
    scores = np.sort(scores[np.isfinite(scores)])
    n = len(scores)
    if n < 2:
        raise ValueError(f"too few validation rows for conformal quantiles: {n}")
    out = []
    for q in LEVELS:
        if q > 0.5:
            rank = min(n, math.ceil((n + 1) * q))
        elif q < 0.5:
            rank = max(1, math.floor((n + 1) * q))
        else:
            out.append(float(np.median(scores)))
            continue
        out.append(float(scores[rank - 1]))
    return list(np.maximum.accumulate(out))


def return_quantiles(
    offsets: dict[str, list[float]], points: dict[str, np.ndarray], scale: np.ndarray
) -> dict[str, np.ndarray]:
    """Return-space quantiles (rows x LEVELS) of each target from its point and offsets."""
    s = np.maximum(np.nan_to_num(np.asarray(scale, dtype="float64")), _MIN_SCALE)
    return {t: points[t][:, None] + s[:, None] * np.asarray(offsets[t])[None, :] for t in offsets}


def to_levels(target: str, y: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Price levels of return-space quantiles (rows x LEVELS), in ascending level order.

    The low's return is log(C / low), which falls as the low rises: its columns are reversed.
    """
    c = np.asarray(last_close, dtype="float64")[:, None]
    y = np.clip(y, -0.5, 0.5)
    if target == "range":
        return np.asarray(c * np.maximum(y, 0.0))
    if target == "low":
        return np.asarray(c * np.exp(-y[:, ::-1]))
    return np.asarray(c * np.exp(y))


def gaussian_sd(y: pd.Series, point: pd.Series) -> pd.Series:
    """EWMA standard deviation of point's past errors, known at each row (grid-indexed, causal).

    The forecast made at row t for t+1 is judged when t+1 closes; row t may only use the errors
    of forecasts made at rows <= t-1.
    """
    err2 = ((y - point) ** 2).shift(1)
    variance = err2.ewm(alpha=RISKMETRICS_ALPHA, ignore_na=True).mean()
    return variance.pow(0.5)


def gaussian_levels(target: str, point: np.ndarray, sd: np.ndarray, close: np.ndarray) -> Any:
    """Price-level quantiles (rows x LEVELS) of the EWMA-volatility Gaussian baseline."""
    z = np.asarray([NormalDist().inv_cdf(q) for q in LEVELS])
    y = np.asarray(point)[:, None] + np.asarray(sd)[:, None] * z[None, :]
    return to_levels(target, y, close)


def pinball(real: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Mean pinball loss per level of LEVELS over rows where everything is finite."""
    r = np.asarray(real, dtype="float64")
    ok = np.isfinite(r) & np.isfinite(quantiles).all(axis=1)
    if not ok.any():
        return np.full(len(LEVELS), np.nan)
    diff = r[ok, None] - quantiles[ok]
    tau = np.asarray(LEVELS)[None, :]
    return np.asarray(np.mean(np.maximum(tau * diff, (tau - 1) * diff), axis=0))


def crps(real: np.ndarray, quantiles: np.ndarray) -> float:
    """CRPS approximated from the quantile set: twice the mean pinball loss over LEVELS."""
    return float(2.0 * np.mean(pinball(real, quantiles)))


def coverage(real: np.ndarray, quantiles: np.ndarray) -> dict[str, float]:
    """Share of finite rows inside each central interval of INTERVALS, by level as text."""
    r = np.asarray(real, dtype="float64")
    ok = np.isfinite(r) & np.isfinite(quantiles).all(axis=1)
    out = {}
    for level, (lo, hi) in INTERVALS.items():
        i, j = LEVELS.index(lo), LEVELS.index(hi)
        inside = (r[ok] >= quantiles[ok, i]) & (r[ok] <= quantiles[ok, j])
        out[f"{level:g}"] = float(inside.mean()) if ok.any() else math.nan
    return out


def score_levels(real: np.ndarray, model: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    """Coverage, pinball per level and CRPS of the model's quantiles (rows where the realized
    value and the model are finite), and the CRPS skill against the baseline's quantiles on the
    rows where the baseline is finite too (null when it never is)."""
    ok = np.isfinite(real) & np.isfinite(model).all(axis=1)
    both = ok & np.isfinite(baseline).all(axis=1)
    loss = pinball(real[ok], model[ok])
    base_crps = crps(real[both], baseline[both]) if both.any() else math.nan
    paired = crps(real[both], model[both]) if both.any() else math.nan
    has_base = math.isfinite(base_crps) and base_crps > 0
    return {
        "coverage": coverage(real[ok], model[ok]),
        "pinball": {f"{q:g}": float(v) for q, v in zip(LEVELS, loss, strict=True)},
        "crps": crps(real[ok], model[ok]),
        "crps_baseline": base_crps,
        "crps_skill": 1.0 - paired / base_crps if has_base else math.nan,
    }


def _real_level(target: str, y: np.ndarray, close: np.ndarray) -> np.ndarray:
    return to_levels(target, np.asarray(y, dtype="float64")[:, None], close)[:, 0]


def validation_quantiles(
    y: dict[str, np.ndarray],
    points: dict[str, np.ndarray],
    base: pd.DataFrame,
    close: np.ndarray,
) -> dict[str, Any]:
    """Held-out quantile figures of the validation rows by cross-fitting: offsets calibrated on
    the first half, scored on the second (the deployed offsets use all of validation)."""
    half = len(close) // 2
    later = slice(half, None)
    scale = points["range"]
    out: dict[str, Any] = {"levels": list(LEVELS), "rows": len(close) - half}
    for t in QUANTILE_TARGETS:
        offsets = conformal_offsets(y[t][:half], points[t][:half], scale[:half])
        q = return_quantiles({t: offsets}, {t: points[t][later]}, scale[later])[t]
        centre = np.zeros(len(close)) if t == "close" else base[f"ewma_y_{t}"].to_numpy()
        sd = base[f"gauss_sd_{t}"].to_numpy()
        gauss = gaussian_levels(t, centre[later], sd[later], close[later])
        real = _real_level(t, y[t][later], close[later])
        out[t] = score_levels(real, to_levels(t, q, close[later]), gauss)
    return out


def _values(pairs: pd.DataFrame, name: str) -> np.ndarray:
    if name not in pairs.columns:
        return np.full(len(pairs), np.nan)
    return np.asarray(pairs[name].to_numpy(dtype="float64"))


def score_quantiles(pairs: pd.DataFrame) -> dict[str, Any] | None:
    """Quantile figures of joined forecast/realized rows (evaluate.score_pairs); None when the
    forecasts carry no quantiles (bundles before format 3, older ledger rows)."""
    if not all(c in pairs.columns for c in QUANTILE_COLUMNS):
        return None
    pairs = pairs[pairs[list(QUANTILE_COLUMNS)].notna().all(axis=1)]
    close = pairs["last_close"].to_numpy(dtype="float64")
    out: dict[str, Any] = {"levels": list(LEVELS), "rows": len(pairs)}
    for t in QUANTILE_TARGETS:
        model = pairs[[column(t, q) for q in LEVELS]].to_numpy(dtype="float64")
        real = pairs[f"real_{t}"].to_numpy(dtype="float64")
        # Ledger rows of older bundles lack the baseline's columns: its figures are then null.
        sd = _values(pairs, f"base_gauss_sd_{t}")
        with np.errstate(divide="ignore", invalid="ignore"):
            if t == "close":
                centre = np.zeros(len(pairs))
            elif t == "range":
                centre = _values(pairs, "base_ewma_range_next") / close
            elif t == "high":
                centre = np.log(_values(pairs, "base_ewma_high_next") / close)
            else:
                centre = np.log(close / _values(pairs, "base_ewma_low_next"))
        gauss = gaussian_levels(t, centre, sd, close)
        out[t] = score_levels(real, model, gauss)
    return out
