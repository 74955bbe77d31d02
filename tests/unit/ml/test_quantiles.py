"""Quantile forecasts: conformal offsets, monotonicity, held-out coverage, scoring, bundle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candlecast.ml.bundle import PREDICTION_COLUMNS, ModelBundle
from candlecast.ml.evaluate import join_realized, score_pairs
from candlecast.ml.quantiles import (
    LEVELS,
    QUANTILE_COLUMNS,
    QUANTILE_TARGETS,
    column,
    conformal_offsets,
    crps,
    pinball,
)
from candlecast.ml.train import train
from tests.unit.ml.conftest import FAST_PARAMS

DAY = 288


@pytest.fixture(scope="module")
def fitted(real_frame: pd.DataFrame) -> tuple[ModelBundle, pd.DataFrame]:
    """A bundle trained on 24 real days and its forecasts of the 6 days after them."""
    train_rows = real_frame.iloc[: 24 * DAY].reset_index(drop=True)
    bundle = train(train_rows, FAST_PARAMS)
    test = real_frame.iloc[24 * DAY - 300 : 30 * DAY].reset_index(drop=True)
    preds = bundle.predict(test)
    preds = preds[preds["open_time"] >= real_frame["open_time"].iloc[24 * DAY]]
    return bundle, join_realized(preds, real_frame)


def test_column_names_are_unique_and_ordered() -> None:
    assert len(set(QUANTILE_COLUMNS)) == len(QUANTILE_COLUMNS) == 4 * len(LEVELS)
    assert column("close", 0.05) == "close_q050"
    assert column("range", 0.975) == "range_q975"
    assert set(QUANTILE_COLUMNS) <= set(PREDICTION_COLUMNS)


def test_conformal_offsets_cover_exchangeable_data() -> None:
    rng = np.random.default_rng(0)
    hits: dict[float, list[bool]] = {q: [] for q in LEVELS}
    for _ in range(200):
        scale = rng.uniform(0.5, 2.0, 101)
        y = scale * rng.standard_t(4, 101) + 0.3
        offsets = conformal_offsets(y[:100], np.zeros(100), scale[:100])
        assert offsets == sorted(offsets)
        for q, off in zip(LEVELS, offsets, strict=True):
            hits[q].append(y[100] <= off * scale[100])
    # Upper quantiles cover at least their level on average; lower ones at most theirs.
    for q in LEVELS:
        rate = float(np.mean(hits[q]))
        if q > 0.5:
            assert rate >= q - 0.05
        elif q < 0.5:
            assert rate <= q + 0.05


def test_quantiles_are_monotone_and_bracket_the_point(
    fitted: tuple[ModelBundle, pd.DataFrame],
) -> None:
    bundle, pairs = fitted
    assert bundle.quantile_offsets
    for target in QUANTILE_TARGETS:
        q = pairs[[column(target, level) for level in LEVELS]].to_numpy()
        assert np.isfinite(q).all()
        assert (np.diff(q, axis=1) >= -1e-9).all(), target
    assert np.allclose(pairs["close_lo"], pairs["close_q050"])
    assert np.allclose(pairs["close_hi"], pairs["close_q950"])
    assert (pairs["range_q025"] >= 0).all()
    assert (pairs["low_q975"] <= pairs["last_close"] * 1.01).all()


def test_held_out_coverage_is_near_nominal(fitted: tuple[ModelBundle, pd.DataFrame]) -> None:
    _, pairs = fitted
    report = score_pairs(pairs)
    figures = report["quantiles"]
    assert figures["rows"] == len(pairs) > 1500
    for target in QUANTILE_TARGETS:
        for level, rate in figures[target]["coverage"].items():
            # Six held-out days after training: the shift between validation and test weeks is
            # larger than sampling noise, so the tolerance is wider than the pooled target's.
            assert abs(rate - float(level)) < 0.06, (target, level, rate)
        assert figures[target]["crps"] < figures[target]["crps_baseline"] * 1.05


def test_pinball_and_crps_on_a_known_case() -> None:
    real = np.array([1.0, 2.0, 3.0])
    quantiles = np.tile(np.asarray(LEVELS) * 0 + 2.0, (3, 1))
    loss = pinball(real, quantiles)
    # Pinball of a constant 2: tau*(y-2) above, (1-tau)*(2-y) below; mean over the 3 rows.
    expected = (np.asarray(LEVELS) * 1 + (1 - np.asarray(LEVELS)) * 1) / 3
    assert np.allclose(loss, expected)
    assert crps(real, quantiles) == pytest.approx(2 * expected.mean())
    assert crps(real, np.tile(real[:, None], (1, len(LEVELS)))) == 0.0


def test_serialised_bundle_predicts_the_same_quantiles(
    fitted: tuple[ModelBundle, pd.DataFrame], real_frame: pd.DataFrame
) -> None:
    bundle, _ = fitted
    window = real_frame.iloc[24 * DAY - 300 : 25 * DAY].reset_index(drop=True)
    again = ModelBundle.from_bytes(bundle.to_bytes()).predict(window)
    pd.testing.assert_frame_equal(bundle.predict(window), again)


def test_pre_anchor_bundle_still_loads_and_predicts(
    fitted: tuple[ModelBundle, pd.DataFrame], real_frame: pd.DataFrame
) -> None:
    bundle, _ = fitted
    old = ModelBundle.from_bytes(bundle.to_bytes())
    # A format-2 bundle: no anchors, offsets, sources or quantiles; gated to the strong naive.
    old.anchors, old.offsets, old.sources, old.quantile_offsets = None, {}, {}, {}
    old.gate_baselines = {
        "open": "persistence",
        "close": "persistence",
        "high": "median_move_12",
        "low": "median_move_12",
        "range": "median_range_12",
    }
    old.weights = {k: 0.0 for k in old.weights}
    window = real_frame.iloc[24 * DAY - 300 : 25 * DAY].reset_index(drop=True)
    preds = old.predict(window)
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    assert preds["base_har_range_next"].isna().all()
    assert preds["close_q500"].isna().all()
    assert np.allclose(preds["range_next"], preds["strong_base_range_next"])
    assert "quantiles" not in score_pairs(join_realized(preds, real_frame).dropna(axis=1))
