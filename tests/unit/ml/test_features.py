"""Features: causality, no price levels, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candlecast.ml.features import FEATURE_NAMES, FEATURE_WINDOW, build_features
from tests.unit.ml.conftest import STEP, synthetic_frame


def test_recomputing_on_a_truncated_history_gives_identical_earlier_rows() -> None:
    frame = synthetic_frame(900, seed=3)
    full = build_features(frame, STEP)
    for cut in (FEATURE_WINDOW - 1, FEATURE_WINDOW + 1, 500, 899):
        part = build_features(frame.iloc[:cut], STEP)
        pd.testing.assert_frame_equal(part, full.iloc[:cut], check_exact=True)


def test_changing_the_future_never_changes_the_past() -> None:
    frame = synthetic_frame(700, seed=4)
    shocked = frame.copy()
    shocked.loc[600:, ["open", "high", "low", "close"]] *= 1.5
    shocked.loc[600:, "volume"] *= 10
    a, b = build_features(frame, STEP), build_features(shocked, STEP)
    pd.testing.assert_frame_equal(a.iloc[:600], b.iloc[:600], check_exact=True)


def test_features_do_not_depend_on_the_price_level() -> None:
    frame = synthetic_frame(700, seed=5)
    scaled = frame.copy()
    scaled[["open", "high", "low", "close"]] *= 7.0
    a, b = build_features(frame, STEP), build_features(scaled, STEP)
    pd.testing.assert_frame_equal(a, b, rtol=1e-7, atol=1e-9)
    assert list(a.columns) == list(FEATURE_NAMES)


def test_all_nan_taker_columns_still_work() -> None:
    feats = build_features(synthetic_frame(400, seed=6, taker=False), STEP)
    assert feats["taker_ratio"].isna().all()
    assert feats["ret_1"].iloc[1:].notna().all()


def test_a_gap_is_not_bridged_by_windows() -> None:
    frame = synthetic_frame(800, seed=7).drop(index=[500]).reset_index(drop=True)
    feats = build_features(frame, STEP)
    after = frame.index[frame["open_time"] == frame["open_time"].iloc[0] + 501 * STEP][0]
    # One-step return and true range across the gap need the missing close: NaN, not bridged.
    assert np.isnan(feats.loc[after, "ret_1"])
    assert np.isnan(feats.loc[after, "tr"])
    # Every window that spans the missing candle is NaN until it has rolled past it.
    assert feats.loc[after : after + 5, "atr_6"].isna().all()
    assert not np.isnan(feats.loc[after + 6, "atr_6"])
    assert feats.loc[after : after + 286, "atr_288"].isna().all()
    # The row two candles after the gap compares with a real previous candle.
    expected = np.log(frame.loc[after + 1, "close"] / frame.loc[after, "close"])
    assert feats.loc[after + 1, "ret_1"] == pytest.approx(expected)


def test_rejects_unsorted_or_off_grid_frames() -> None:
    frame = synthetic_frame(50)
    with pytest.raises(ValueError, match="ascending"):
        build_features(frame.iloc[::-1], STEP)
    bad = frame.copy()
    bad["open_time"] = bad["open_time"] + (bad.index == 10)
    with pytest.raises(ValueError, match="grid"):
        build_features(bad, STEP)
