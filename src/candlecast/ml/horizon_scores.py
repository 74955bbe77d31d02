"""Scoring of multi-candle horizon forecasts (horizons.predict_horizons rows) against the candles.

Per horizon: the range's MAE and skill against each baseline (persistence, random_walk, har) with
a paired block-bootstrap 95% CI of the skill against HAR; the close quantiles' coverage, pinball
loss and CRPS, with CRPS skill against the random-walk Gaussian and the persistence fan (the
empirical h-step return quantiles); the range quantiles' coverage and CRPS.

h-step targets of consecutive origins overlap (h - 1 of their candles are shared), so their
errors are correlated well beyond one candle. The bootstrap resamples blocks of six hours
(72 candles at 5m, 6 at 1h: longer than either horizon's overlap except 12 candles at 1h), which
keeps the CI honest for the overlap as for volatility clustering.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import pandas as pd

from candlecast.ml.features import to_grid
from candlecast.ml.horizons import (
    BASELINE_KEYS,
    CLIMATE_COLUMNS,
    CLOSE_COLUMNS,
    HORIZONS,
    RANGE_COLUMNS,
    gaussian_close_levels,
)
from candlecast.ml.metrics import bootstrap_skill_ci, mae, skill
from candlecast.ml.quantiles import LEVELS, coverage, crps, score_levels

BOOTSTRAP_BLOCK_MS: Final = 6 * 3_600_000
OVERLAP_NOTE: Final = (
    "h-step targets of consecutive origins overlap; the paired bootstrap resamples 6-hour blocks"
)


def join_realized(predictions: pd.DataFrame, candles: pd.DataFrame, step: int) -> pd.DataFrame:
    """Adds real_close (close of t+h) and real_range (max high - min low over t+1..t+h);
    NaN where any of those candles is missing."""
    grid = to_grid(candles.sort_values("open_time").reset_index(drop=True), step)
    parts = []
    for h in sorted({int(v) for v in predictions["horizon"]}):
        rows = predictions[predictions["horizon"] == h]
        high = grid["high"].rolling(h, min_periods=h).max().shift(-h)
        low = grid["low"].rolling(h, min_periods=h).min().shift(-h)
        close = grid["close"].shift(-h).where(high.notna())
        real = pd.DataFrame({"real_close": close, "real_range": high - low})
        origin = rows["open_time"].to_numpy(dtype=np.int64)
        values = real.reindex(origin).to_numpy()
        parts.append(rows.assign(real_close=values[:, 0], real_range=values[:, 1]))
    if not parts:
        return predictions.assign(real_close=np.nan, real_range=np.nan)
    return pd.concat(parts, ignore_index=True)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def score_horizon(pairs: pd.DataFrame, block: int) -> dict[str, Any]:
    """Figures of one horizon's joined rows (see the module docstring); JSON-ready."""
    pairs = pairs[np.isfinite(pairs["real_range"].to_numpy(dtype="float64"))]
    real_range = pairs["real_range"].to_numpy(dtype="float64")
    real_close = pairs["real_close"].to_numpy(dtype="float64")
    last = pairs["last_close"].to_numpy(dtype="float64")
    pred = pairs["range"].to_numpy(dtype="float64")
    model_mae = mae(real_range, pred)
    rng: dict[str, Any] = {"mae": model_mae, "baselines": {}}
    for key in BASELINE_KEYS:
        name = key.removesuffix("_range")
        base = pairs[key].to_numpy(dtype="float64")
        base_mae = mae(real_range, base)
        rng["baselines"][name] = {"mae": base_mae, "skill": skill(model_mae, base_mae)}
    har = pairs["har_range"].to_numpy(dtype="float64")
    lo, hi = bootstrap_skill_ci(real_range - pred, real_range - har, block=block)
    rng["har_skill_ci95"] = [lo, hi]
    range_q = pairs[list(RANGE_COLUMNS)].to_numpy(dtype="float64")
    rng["coverage"] = coverage(real_range, range_q)
    rng["crps"] = crps(real_range, range_q)
    close_q = pairs[list(CLOSE_COLUMNS)].to_numpy(dtype="float64")
    gauss = gaussian_close_levels(last, pairs["random_walk_close_sd"].to_numpy(dtype="float64"))
    close = score_levels(real_close, close_q, gauss)
    close["crps_baseline_name"] = "random_walk_gaussian"
    climate = pairs[list(CLIMATE_COLUMNS)].to_numpy(dtype="float64")
    fan = crps(real_close, climate)
    close["crps_persistence"] = fan
    close["crps_skill_persistence"] = skill(close["crps"], fan)
    close["persistence_coverage"] = coverage(real_close, climate)
    report: dict[str, Any] = _clean(
        {
            "rows": len(pairs),
            "levels": list(LEVELS),
            "range": rng,
            "close": close,
            "bootstrap_block": block,
        }
    )
    return report


def score_horizons(pairs: pd.DataFrame, step: int) -> dict[str, Any]:
    """{"note": ..., "<h>": score_horizon(...)} for each horizon of HORIZONS in the pairs."""
    block = max(1, BOOTSTRAP_BLOCK_MS // step) if step > 0 else 1
    out: dict[str, Any] = {"note": OVERLAP_NOTE}
    for h in HORIZONS:
        rows = pairs[pairs["horizon"] == h] if len(pairs) else pairs
        if len(rows):
            out[str(h)] = score_horizon(rows, block)
    return out
