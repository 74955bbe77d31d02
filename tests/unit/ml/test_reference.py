"""Cross-asset features: another pair's candles beside the pair's own, strictly causal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candlecast.ml.baselines import frame_inputs
from candlecast.ml.bundle import ModelBundle
from candlecast.ml.features import (
    FEATURE_NAMES,
    REFERENCE_COLUMNS,
    REFERENCE_FEATURES,
    attach_reference,
    build_features,
)
from candlecast.ml.train import train
from tests.unit.ml.conftest import FAST_PARAMS, STEP, synthetic_frame


def _pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(own, reference): the own pair's candle t+1 is about as wide as the reference's candle
    t-1, which row t's reference features read; the pair's own candles cannot tell it."""
    reference = synthetic_frame(6 * 288, seed=12)
    own = synthetic_frame(6 * 288, seed=11)
    rng = np.random.default_rng(13)
    spread = np.log(reference["high"].to_numpy() / reference["low"].to_numpy())
    width = np.roll(spread, 2) * rng.uniform(0.5, 1.5, len(spread))
    middle = own["close"].to_numpy()
    own["open"] = middle
    own["high"] = middle * np.exp(width / 2)
    own["low"] = middle * np.exp(-width / 2)
    return own, reference


def _reference_features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame_inputs(frame, STEP)[1][list(REFERENCE_FEATURES)]


def test_attach_aligns_by_open_time_and_leaves_missing_candles_nan() -> None:
    own, reference = _pair()
    # The reference lacks two candles and starts later: those rows get NaN, no row moves.
    holed = reference.drop(index=[500, 501]).iloc[10:]
    joined = attach_reference(own, holed)
    assert joined.index.equals(own.index)
    pd.testing.assert_frame_equal(joined[list(own.columns)], own)
    assert joined.loc[[500, 501], list(REFERENCE_COLUMNS)].isna().all().all()
    assert joined.loc[:9, "ref_close"].isna().all()
    np.testing.assert_array_equal(
        joined.loc[20:, "ref_close"].drop(index=[500, 501]), holed.loc[20:, "close"]
    )


def test_row_t_reads_the_reference_up_to_t_minus_one_only() -> None:
    own, reference = _pair()
    base = _reference_features(attach_reference(own, reference))
    t = 1000
    # Any change to the reference's candle t or later leaves rows up to t unchanged...
    shocked = reference.copy()
    shocked.loc[t:, ["high", "low", "close"]] *= 1.3
    after = _reference_features(attach_reference(own, shocked))
    pd.testing.assert_frame_equal(after.iloc[: t + 1], base.iloc[: t + 1], check_exact=True)
    # ...while a change to candle t-1 reaches row t: the lag is exactly one candle.
    moved = reference.copy()
    moved.loc[t - 1, ["high", "close"]] *= 1.01
    nudged = _reference_features(attach_reference(own, moved))
    pd.testing.assert_frame_equal(nudged.iloc[:t], base.iloc[:t], check_exact=True)
    assert not np.allclose(nudged.iloc[t].to_numpy(), base.iloc[t].to_numpy(), equal_nan=True)


def test_the_own_features_do_not_change_with_a_reference() -> None:
    own, reference = _pair()
    alone = build_features(own, STEP)
    beside = frame_inputs(attach_reference(own, reference), STEP)[1][list(FEATURE_NAMES)]
    pd.testing.assert_frame_equal(beside, alone, check_exact=True)
    assert _reference_features(own).isna().all().all()


def test_a_model_with_a_reference_reads_it_and_names_it() -> None:
    own, reference = _pair()
    frame = attach_reference(own, reference)
    params = {**FAST_PARAMS, "symbol": "ETHUSDT", "reference": "BTCUSDT", "min_val_skill": -10.0}
    bundle = train(frame, params)
    assert bundle.reference == "BTCUSDT" and bundle.meta["reference"] == "BTCUSDT"
    assert set(REFERENCE_FEATURES) <= set(bundle.feature_names)
    again = ModelBundle.from_bytes(bundle.to_bytes())
    assert again.reference == "BTCUSDT"
    with_reference = again.predict(frame)
    # Without the reference's candles its features are NaN and the forecasts change: the
    # model does use them.
    without = again.predict(own)
    assert not np.allclose(with_reference["range_next"], without["range_next"], equal_nan=True)
    assert train(own, {**FAST_PARAMS}).reference is None


def test_a_reference_without_its_candles_or_of_the_pair_itself_is_a_clear_error() -> None:
    own, reference = _pair()
    with pytest.raises(ValueError, match="lacks"):
        train(own, {**FAST_PARAMS, "symbol": "ETHUSDT", "reference": "BTCUSDT"})
    with pytest.raises(ValueError, match="its own reference"):
        train(attach_reference(own, reference), {**FAST_PARAMS, "reference": "BTCUSDT"})


def test_the_reference_setting_is_a_symbol_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from candlecast.config import Settings

    assert Settings(_env_file=None).reference_symbol == "BTCUSDT"
    assert Settings(_env_file=None, reference_symbol="ethusdt").reference_symbol == "ETHUSDT"
    assert Settings(_env_file=None, reference_symbol=" ").reference_symbol == ""
    with pytest.raises(ValidationError, match="reference_symbol"):
        Settings(_env_file=None, reference_symbol="BTC/USDT")
