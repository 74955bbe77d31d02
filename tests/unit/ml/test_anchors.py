"""The classical anchors: causality, determinism, the LAD solver, the split, the bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from candlecast.domain import INTERVAL_MS
from candlecast.ml.anchors import (
    Anchors,
    fit_anchors,
    fit_split,
    fit_time_of_day,
    split_range,
)
from candlecast.ml.features import to_grid
from candlecast.ml.lad import lad_fit, weighted_median
from candlecast.ml.metrics import bootstrap_skill_ci, mae
from candlecast.ml.targets import grid_targets
from tests.unit.ml.conftest import STEP, synthetic_frame

DAY = 288


def _fit(frame: pd.DataFrame, days: int) -> tuple[pd.DataFrame, Anchors]:
    grid = to_grid(frame, STEP)
    anchors = fit_anchors(grid, np.arange(days * DAY), grid_targets(grid), STEP)
    return grid, anchors


@pytest.fixture(scope="module")
def slice_20d(real_frame: pd.DataFrame) -> pd.DataFrame:
    return real_frame.iloc[: 20 * DAY].reset_index(drop=True)


def test_anchors_are_causal(slice_20d: pd.DataFrame) -> None:
    grid, anchors = _fit(slice_20d, 14)
    before = anchors.forecasts(grid)
    cut = 16 * DAY
    changed = slice_20d.copy()
    later = changed.index >= cut
    changed.loc[later, ["high", "low", "close", "open"]] *= 1.5
    changed.loc[later, "high"] *= 1.01
    after = anchors.forecasts(to_grid(changed, STEP))
    pd.testing.assert_frame_equal(before.iloc[:cut], after.iloc[:cut])
    assert not np.allclose(before["har_range"].iloc[cut:], after["har_range"].iloc[cut:])


def test_fit_reads_only_the_training_rows(slice_20d: pd.DataFrame) -> None:
    _, anchors = _fit(slice_20d, 14)
    changed = slice_20d.copy()
    # Rows beyond the training rows (plus the one target candle after them) change.
    changed.loc[changed.index > 14 * DAY, ["high"]] *= 1.2
    _, refit = _fit(changed, 14)
    assert np.array_equal(anchors.har_coef, refit.har_coef)
    assert np.array_equal(anchors.tod, refit.tod)
    assert anchors.har_split == refit.har_split


def test_har_fit_is_deterministic_and_serialises(slice_20d: pd.DataFrame) -> None:
    grid, first = _fit(slice_20d, 14)
    _, second = _fit(slice_20d, 14)
    assert first.to_dict() == second.to_dict()
    restored = Anchors.from_dict(first.to_dict())
    pd.testing.assert_frame_equal(first.forecasts(grid), restored.forecasts(grid))


def test_har_beats_the_rolling_median_out_of_sample(slice_20d: pd.DataFrame) -> None:
    grid, anchors = _fit(slice_20d, 14)
    fc = anchors.forecasts(grid)
    y = grid_targets(grid)
    test = np.arange(15 * DAY, len(grid) - 1)
    close = y["last_close"].to_numpy()[test]
    real = y["range_next"].to_numpy()[test]
    har = mae(real, fc["har_range"].to_numpy()[test] * close)
    prev = grid["close"].shift(1)
    rel = ((grid["high"] - grid["low"]) / prev).rolling(12, min_periods=1).median()
    median = mae(real, rel.to_numpy()[test] * close)
    assert har < 0.97 * median


def test_time_of_day_factor_is_smooth_and_normalised(slice_20d: pd.DataFrame) -> None:
    grid = to_grid(slice_20d, STEP)
    rel = ((grid["high"] - grid["low"]) / grid["close"]).to_numpy()
    tod = fit_time_of_day(grid.index.to_numpy(dtype=np.int64), rel, STEP)
    assert tod.shape == (DAY,)
    assert tod.mean() == pytest.approx(1.0)
    assert (tod > 0).all()
    # The US session (13:30-20:00 UTC) is more volatile than the Asian night (01:00-05:00).
    assert tod[13 * 12 + 6 : 20 * 12].mean() > tod[1 * 12 : 5 * 12].mean()


def test_lad_matches_linear_programming() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([np.ones(400), rng.normal(size=(400, 3))])
    y = x @ np.array([1.0, 2.0, -1.0, 0.5]) + rng.standard_t(2, 400)
    w = rng.uniform(0.5, 2.0, 400)
    coef = lad_fit(x, y, w)
    n, k = x.shape
    # min sum w (u + v) s.t. x b + u - v = y, u, v >= 0, b free.
    cost = np.concatenate([np.zeros(k), w, w])
    eq = np.hstack([x, np.eye(n), -np.eye(n)])
    bounds = [(None, None)] * k + [(0, None)] * (2 * n)
    exact = linprog(cost, A_eq=eq, b_eq=y, bounds=bounds, method="highs")
    ours = float(np.sum(w * np.abs(y - x @ coef)))
    assert ours <= exact.fun * 1.001


def test_weighted_median_minimises_weighted_absolute_error() -> None:
    rng = np.random.default_rng(5)
    v, w = rng.normal(size=301), rng.uniform(0.1, 3, 301)
    m = weighted_median(v, w)
    grid = np.linspace(v.min(), v.max(), 4001)
    losses = [np.sum(w * np.abs(v - g)) for g in grid]
    assert np.sum(w * np.abs(v - m)) <= min(losses) + 1e-9


def test_split_is_mae_optimal_on_a_toy_set() -> None:
    rng = np.random.default_rng(7)
    rng_fc = rng.uniform(0.001, 0.004, 2000)
    share = rng.beta(4, 5, 2000)
    real_range = rng_fc * rng.lognormal(0, 0.3, 2000)
    y_high = np.log1p(share * real_range)
    y_low = -np.log1p(-(1 - share) * real_range)
    up, down = fit_split(y_high, y_low, rng_fc)

    def loss(f_up: float, f_down: float) -> float:
        high, low = split_range(rng_fc, (f_up, f_down))
        above = np.abs(np.expm1(y_high) - np.expm1(high)).sum()
        return float(above + np.abs(np.expm1(-y_low) - np.expm1(-low)).sum())

    best = loss(up, down)
    for f in np.linspace(0.2, 0.8, 121):
        assert best <= loss(f, down) + 1e-12
        assert best <= loss(up, f) + 1e-12
    assert best < loss(0.5, 0.5)


def test_bootstrap_ci_brackets_the_skill_and_shrinks_with_data() -> None:
    rng = np.random.default_rng(11)
    base = np.abs(rng.normal(size=20_000))
    model = base * rng.uniform(0.85, 1.05, 20_000)
    point = 1 - model.sum() / base.sum()
    lo, hi = bootstrap_skill_ci(model, base, block=50)
    assert lo < point < hi
    assert lo > 0 and hi < 0.1
    small = bootstrap_skill_ci(model[:2000], base[:2000], block=50)
    assert small[1] - small[0] > hi - lo
    assert bootstrap_skill_ci(model, base, block=50) == (lo, hi)
    same = bootstrap_skill_ci(base, base, block=50)
    assert same == pytest.approx((0.0, 0.0))
    assert np.isnan(bootstrap_skill_ci(model[:10], base[:10], block=50)[0])


@pytest.mark.parametrize("interval", ["1m", "1d"])
def test_less_than_a_day_of_slots_still_fits(interval: str) -> None:
    # Regression: with fewer candles than slots in a day (or one slot a day) the factor is
    # constant, collinear with the intercept, and the normal equations were singular.
    step = INTERVAL_MS[interval]
    frame = synthetic_frame(800, seed=3)
    frame["open_time"] = 1_700_000_000_000 // step * step + step * np.arange(800)
    grid = to_grid(frame, step)
    anchors = fit_anchors(grid, np.arange(600), grid_targets(grid), step)
    assert np.isfinite(anchors.har_coef).all()
    assert (anchors.tod == 1.0).all()
    forecasts = anchors.forecasts(grid)
    assert np.isfinite(forecasts["har_range"].iloc[1:]).all()
    assert (forecasts["har_range"].iloc[1:] > 0).all()
