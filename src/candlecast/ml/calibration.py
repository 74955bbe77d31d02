"""Platt scaling of classifier probabilities (two parameters, so it serializes as two floats)."""

from __future__ import annotations

import numpy as np


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of y on logit(raw) by Newton steps; tiny ridge keeps it finite."""
    x = _logit(raw)
    a, b = 1.0, 0.0
    for _ in range(50):
        z = np.clip(a * x + b, -30, 30)
        p = 1 / (1 + np.exp(-z))
        g = np.array([np.sum((p - y) * x) + 1e-3 * (a - 1), np.sum(p - y) + 1e-3 * b])
        s = p * (1 - p)
        hess = np.array(
            [[np.sum(s * x * x) + 1e-3, np.sum(s * x)], [np.sum(s * x), np.sum(s) + 1e-3]]
        )
        step = np.linalg.solve(hess, g)
        a, b = a - float(step[0]), b - float(step[1])
        if np.max(np.abs(step)) < 1e-9:
            break
    return a, b


def apply_platt(raw: np.ndarray, a: float, b: float) -> np.ndarray:
    """Maps raw classifier probabilities through a fitted Platt (a, b)."""
    return np.asarray(1 / (1 + np.exp(-np.clip(a * _logit(raw) + b, -30, 30))))
