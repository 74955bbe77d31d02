"""Targets and consistent price reconstruction."""

from __future__ import annotations

import numpy as np
import pytest

from candlecast.ml.targets import build_targets, reconstruct
from tests.unit.ml.conftest import STEP, synthetic_frame


def test_targets_are_the_next_candle_relative_to_the_last_close() -> None:
    frame = synthetic_frame(10, seed=2)
    t = build_targets(frame, STEP)
    c, nxt = frame["close"].iloc[3], frame.iloc[4]
    assert t.loc[3, "y_close"] == pytest.approx(np.log(nxt["close"] / c))
    assert t.loc[3, "y_high"] == pytest.approx(np.log(nxt["high"] / c))
    assert t.loc[3, "y_low"] == pytest.approx(np.log(c / nxt["low"]))
    assert t.loc[3, "y_range"] == pytest.approx((nxt["high"] - nxt["low"]) / c)
    assert t.loc[3, "up"] == float(nxt["close"] > c)
    assert t.loc[3, "range_next"] == pytest.approx(nxt["high"] - nxt["low"])
    assert t.iloc[-1][["y_close", "up", "close_next"]].isna().all()


def test_targets_are_nan_where_the_next_candle_is_missing() -> None:
    frame = synthetic_frame(20, seed=2).drop(index=[10]).reset_index(drop=True)
    t = build_targets(frame, STEP)
    assert t.loc[9, ["y_open", "y_high", "y_low", "y_close", "y_range", "up"]].isna().all()
    close = frame["close"].to_numpy()
    assert t["y_close"].iloc[8] == pytest.approx(np.log(close[9] / close[8]))
    assert t["y_close"].iloc[10] == pytest.approx(np.log(close[11] / close[10]))


def _check_consistent(levels: np.ndarray) -> None:
    o, h, lo, c, r = (levels[:, i] for i in range(5))
    assert np.isfinite(levels).all()
    assert (h >= np.maximum(o, c)).all()
    assert (lo <= np.minimum(o, c)).all()
    assert (lo > 0).all()
    assert (r >= np.abs(c - o)).all()
    assert (r >= 0).all()


def test_reconstruction_is_consistent_for_adversarial_inputs() -> None:
    rng = np.random.default_rng(0)
    n = 20_000
    specials = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -5.0, 5.0])

    def draw() -> np.ndarray:
        x = rng.normal(0, 0.05, n)
        mask = rng.random(n) < 0.2
        x[mask] = rng.choice(specials, mask.sum())
        return x

    last_close = rng.uniform(1e-6, 1e6, n)
    out = reconstruct(last_close, draw(), draw(), draw(), draw(), draw())
    _check_consistent(out.to_numpy())


def test_reconstruction_of_contradictory_returns_is_clamped() -> None:
    # Model says close +1% but high only +0.1% and a negative low excursion: still consistent.
    out = reconstruct(
        np.array([100.0]),
        np.array([0.0]),
        np.array([0.001]),
        np.array([-0.02]),
        np.array([0.01]),
        np.array([-1.0]),
    )
    row = out.iloc[0]
    assert row["high_next"] == pytest.approx(row["close_next"])
    assert row["low_next"] == pytest.approx(100.0)
    _check_consistent(out.to_numpy())


def test_invalid_last_close_gives_no_forecast() -> None:
    out = reconstruct(np.array([np.nan, 0.0, 100.0]), *([np.zeros(3)] * 5))
    assert out.iloc[:2].isna().all().all()
    assert out.iloc[2]["close_next"] == 100.0
