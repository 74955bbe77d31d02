"""Prospective scores of horizon forecasts (store.horizons rows), each beside its baselines.

The range forecast is scored by its MAE against the three baselines recorded with it
(persistence, random-walk scaling of the one-step volatility, HAR), each on the rows where that
baseline had a value. The close's quantiles are scored by the average pinball loss over the
quantile keys, and by CRPS approximated as twice that average (the CRPS is twice the integral
of the pinball loss over the levels); persistence, a point forecast, is the baseline, and its
CRPS is the same formula applied to a distribution with all its mass on the last close. The
coverage of the 50/80/90/95% central intervals says whether the quantiles are calibrated.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

# Central intervals whose coverage is reported: nominal level (percent) -> quantile keys.
INTERVALS: Final = {
    "50": ("q250", "q750"),
    "80": ("q100", "q900"),
    "90": ("q050", "q950"),
    "95": ("q025", "q975"),
}
BASELINES: Final = {
    "persistence": "persistence_range",
    "random_walk": "random_walk_range",
    "har": "har_range",
}
MEDIAN_KEY: Final = "q500"


def level_of(key: str) -> float:
    """The level of a quantile key, in per mille after the q: q025 is 0.025, q500 the median."""
    return int(key[1:]) / 1000


def pinball(level: float, realized: float, forecast: float) -> float:
    """The pinball (quantile) loss of one quantile forecast."""
    error = realized - forecast
    return max(level * error, (level - 1) * error)


def mean_pinball(quantiles: dict[str, float], realized: float) -> float:
    """The pinball loss averaged over a forecast's quantile keys."""
    losses = [pinball(level_of(k), realized, float(v)) for k, v in quantiles.items()]
    return sum(losses) / len(losses)


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _skill(model: float | None, baseline: float | None) -> float | None:
    if model is None or baseline is None or baseline == 0:
        return None
    return 1 - model / baseline


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def coverage(rows: Sequence[tuple[dict[str, float], float]]) -> dict[str, float | None]:
    """Per central interval, the share of realized values inside [lower, upper]."""
    out: dict[str, float | None] = {}
    for name, (low, high) in INTERVALS.items():
        inside = [
            float(q[low]) <= value <= float(q[high]) for q, value in rows if low in q and high in q
        ]
        out[name] = _mean(1.0 if hit else 0.0 for hit in inside)
    return out


def _range_scores(scored: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [abs(float(r["range"]) - float(r["real_range"])) for r in scored]
    baselines: dict[str, Any] = {}
    for name, column in BASELINES.items():
        pairs: list[tuple[float, float]] = []
        for r in scored:
            base = _finite(r[column])
            if base is not None:
                real = float(r["real_range"])
                pairs.append((abs(float(r["range"]) - real), abs(base - real)))
        model_mae = _mean(p[0] for p in pairs)
        baseline_mae = _mean(p[1] for p in pairs)
        baselines[name] = {
            "mae": baseline_mae,
            "model_mae": model_mae,
            "skill": _skill(model_mae, baseline_mae),
            "rows": len(pairs),
        }
    realized = [(r["range_quantiles"], float(r["real_range"])) for r in scored]
    return {
        "mae": _mean(errors),
        "baselines": baselines,
        "pinball": _mean(mean_pinball(q, y) for q, y in realized if q),
        "coverage": coverage(realized),
    }


def _close_scores(scored: list[dict[str, Any]]) -> dict[str, Any]:
    realized = [(r["close_quantiles"], float(r["real_close"])) for r in scored]
    medians = [
        (float(q[MEDIAN_KEY]), y, float(r["last_close"]))
        for r, (q, y) in zip(scored, realized, strict=True)
        if MEDIAN_KEY in q
    ]
    mae = _mean(abs(m - y) for m, y, _ in medians)
    persistence_mae = _mean(abs(last - y) for _, y, last in medians)
    pinballs = [mean_pinball(q, y) for q, y in realized if q]
    # The persistence forecast as a distribution with all its mass on the last close, scored
    # over the same keys, so that the two CRPS figures are computed alike.
    persistence_pinballs = [
        mean_pinball({k: float(r["last_close"]) for k in q}, y)
        for r, (q, y) in zip(scored, realized, strict=True)
        if q
    ]
    crps = _mean(2 * p for p in pinballs)
    persistence_crps = _mean(2 * p for p in persistence_pinballs)
    return {
        "mae": mae,
        "persistence_mae": persistence_mae,
        "skill": _skill(mae, persistence_mae),
        "pinball": _mean(pinballs),
        "crps": crps,
        "persistence_crps": persistence_crps,
        "crps_skill": _skill(crps, persistence_crps),
        "coverage": coverage(realized),
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Scores of one horizon's forecasts (store.horizons rows); the unscored ones only count."""
    scored = [r for r in rows if r["scored_at"] is not None and r["real_range"] is not None]
    if not scored:
        return {"forecasts": len(rows), "scored": 0, "range": None, "close": None}
    return {
        "forecasts": len(rows),
        "scored": len(scored),
        "range": _range_scores(scored),
        "close": _close_scores(scored),
    }
