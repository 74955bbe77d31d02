"""Small helpers that shape stored records into JSON-ready values."""

from __future__ import annotations

import math
from typing import Any

from candlecast.domain import iso_utc

MAX_WINDOW_DAYS = 90


def iso(ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 UTC with Z, or None."""
    return None if ms is None else iso_utc(int(ms))


def baselines_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """Per target: the baseline's name and MAE beside the model's, and the skill over it."""
    validation = clean(metrics.get("validation") or {})
    out: dict[str, Any] = {}
    for target, figures in validation.items():
        # "quantiles" holds interval figures, not a point target with a baseline.
        if not isinstance(figures, dict) or target == "quantiles":
            continue
        if target == "direction":
            out[target] = {
                key: figures.get(key)
                for key in ("brier", "brier_baseline", "accuracy", "climatology")
                if key in figures
            }
            continue
        out[target] = {
            "baseline": figures.get("baseline"),
            "baseline_mae": figures.get("baseline_mae"),
            "mae": figures.get("mae"),
            "skill": figures.get("skill"),
            **{k: v for k, v in figures.items() if k.startswith(("strong_", "har_", "ewma_"))},
        }
    return out


def skill_of(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The model's skill over its baseline per price target (1 - MAE / baseline MAE)."""
    validation = clean(metrics.get("validation") or {})
    return {
        target: figures.get("skill")
        for target, figures in validation.items()
        if isinstance(figures, dict) and "skill" in figures
    }


def clean(value: Any) -> Any:
    """A copy with NaN and infinities replaced by None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
