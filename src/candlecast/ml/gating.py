"""Blending a model with its baselines and gating it against the best of them on validation.

Each regressor forecasts gate + w * (model - gate) in return space, where the gate is, per target,
the candidate baseline (naives and anchors) with the lowest validation price MAE; w is chosen on
validation from a grid and is 0 (the gate itself) unless the blend beats the gate by at least
min_val_skill. The figures record the result against every baseline (docs/model.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from candlecast.ml.anchors import ANCHOR_TARGETS, split_range
from candlecast.ml.baselines import (
    ANCHOR_NAMES,
    BASELINE_NAMES,
    STRONG_BASELINE_NAMES,
    STRONG_TARGETS,
)
from candlecast.ml.metrics import bootstrap_skill_ci, mae, mape, skill, smape

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
# Targets at the random-walk limit: a model is used only if its validation skill is significant.
SIGNIFICANCE_TARGETS = ("open", "close", "direction")
# Bootstrap blocks of six hours: errors cluster with volatility within a session.
BLOCK_MS = 6 * 3_600_000


def to_level(name: str, y: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Maps a target's return-space values to its price level (see targets)."""
    if name == "range":
        return np.asarray(last_close * y)
    sign = -1.0 if name == "low" else 1.0
    return np.asarray(last_close * np.exp(sign * y))


def best_weight(
    name: str,
    y: np.ndarray,
    base: np.ndarray,
    model: np.ndarray,
    last_close: np.ndarray,
    min_skill: float,
    significance_block: int | None = None,
) -> tuple[float, dict[str, float]]:
    """Returns the blend weight w toward `model` from `base` and its validation price MAEs.

    w = 0 (pure baseline) unless the best blend beats `base` by at least min_skill and, when
    `significance_block` is given, the lower end of the paired block-bootstrap 95% interval of
    that skill on validation is above 0.
    """
    target = to_level(name, y, last_close)
    base_mae = mae(target, to_level(name, base, last_close))
    raw_mae = mae(target, to_level(name, model, last_close))
    best_w, best_mae = 0.0, base_mae
    for w in WEIGHT_GRID[1:]:
        err = mae(target, to_level(name, base + w * (model - base), last_close))
        if err < best_mae:
            best_w, best_mae = float(w), err
    if not skill(best_mae, base_mae) >= min_skill:
        best_w, best_mae = 0.0, base_mae
    if best_w > 0 and significance_block is not None:
        chosen = to_level(name, base + best_w * (model - base), last_close)
        lo, _ = bootstrap_skill_ci(
            target - chosen, target - to_level(name, base, last_close), block=significance_block
        )
        if not lo > 0:
            best_w, best_mae = 0.0, base_mae
    return best_w, {"mae": best_mae, "gate_mae": base_mae, "raw_model_mae": raw_mae}


def candidates(name: str, base: pd.DataFrame, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The naive forecasts of a target on `rows`, by baseline name; the primary one first."""
    out = {BASELINE_NAMES[name]: base[f"y_{name}"].to_numpy()[rows]}
    if name in STRONG_TARGETS:
        out[STRONG_BASELINE_NAMES[name]] = base[f"strong_y_{name}"].to_numpy()[rows]
    if name in ANCHOR_TARGETS:
        for anchor, prefix in ANCHOR_NAMES.items():
            out[anchor] = base[f"{prefix}_y_{name}"].to_numpy()[rows]
    return out


def pick_source(
    name: str,
    y: np.ndarray,
    model: np.ndarray,
    final_range: np.ndarray,
    split: tuple[float, float],
    last_close: np.ndarray,
) -> tuple[str, np.ndarray]:
    """The high/low forecast with the lowest validation MAE among the target's own model, the
    MAE-optimal split of the final range forecast, and their mean (see bundle.SOURCES)."""
    from_range = split_range(final_range, split)[0 if name == "high" else 1]
    options = {"model": model, "range_split": from_range, "mean": (model + from_range) / 2}
    target = to_level(name, y, last_close)
    scores = {k: mae(target, to_level(name, v, last_close)) for k, v in options.items()}
    best = min(scores, key=lambda k: scores[k])
    return best, options[best]


def gate_baseline(
    name: str, y: np.ndarray, candidates: Mapping[str, np.ndarray], last_close: np.ndarray
) -> str:
    """The candidate naive with the lowest validation price MAE; ties go to the strong one."""
    target = to_level(name, y, last_close)
    scores = {k: mae(target, to_level(name, v, last_close)) for k, v in candidates.items()}
    order = sorted(scores, key=lambda k: (scores[k], k == BASELINE_NAMES[name]))
    return order[0]


def figures(
    name: str,
    y: np.ndarray,
    chosen: np.ndarray,
    candidates: Mapping[str, np.ndarray],
    last_close: np.ndarray,
    gate: str,
    weight: float,
    maes: Mapping[str, float],
) -> dict[str, Any]:
    """Validation figures of one target against both naives (the report's field names)."""
    target = to_level(name, y, last_close)
    level = to_level(name, chosen, last_close)
    model_mae = maes["mae"]
    primary = BASELINE_NAMES[name]
    primary_mae = mae(target, to_level(name, candidates[primary], last_close))
    out: dict[str, Any] = {
        "samples": float(np.isfinite(target).sum()),
        "mape": mape(target, level),
        "smape": smape(target, level),
        "weight": weight,
        "mae": model_mae,
        "baseline": primary,
        "baseline_mae": primary_mae,
        "skill": skill(model_mae, primary_mae),
    }
    if name in STRONG_TARGETS:
        strong = STRONG_BASELINE_NAMES[name]
        strong_mae = mae(target, to_level(name, candidates[strong], last_close))
        out["strong_baseline"] = strong
        out["strong_baseline_mae"] = strong_mae
        out["strong_skill"] = skill(model_mae, strong_mae)
    for anchor, prefix in ANCHOR_NAMES.items():
        if anchor in candidates:
            anchor_mae = mae(target, to_level(name, candidates[anchor], last_close))
            out[f"{prefix}_baseline"] = anchor
            out[f"{prefix}_baseline_mae"] = anchor_mae
            out[f"{prefix}_skill"] = skill(model_mae, anchor_mae)
    out["gate_baseline"] = gate
    out["gate_skill"] = skill(model_mae, maes["gate_mae"])
    out["raw_model_mae"] = maes["raw_model_mae"]
    out["raw_model_skill"] = skill(maes["raw_model_mae"], maes["gate_mae"])
    return out
