"""train(): purity, reproducibility, serialization, fallback to the baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candlecast.ml.bundle import PREDICTION_COLUMNS, ModelBundle
from candlecast.ml.train import (
    TrainParams,
    data_fingerprint,
    resolve_params,
    train,
    train_with_inputs,
)
from tests.unit.ml.conftest import FAST_PARAMS, STEP


@pytest.fixture(scope="module")
def bundle(frame_6d: pd.DataFrame) -> ModelBundle:
    return train(frame_6d, FAST_PARAMS)


def test_same_data_and_seed_give_identical_predictions(
    frame_6d: pd.DataFrame, bundle: ModelBundle
) -> None:
    again = train(frame_6d.copy(), FAST_PARAMS)
    pd.testing.assert_frame_equal(bundle.predict(frame_6d), again.predict(frame_6d))
    assert again.model_strings == bundle.model_strings


def test_train_does_not_modify_its_input(frame_6d: pd.DataFrame) -> None:
    before = frame_6d.copy()
    train(frame_6d, FAST_PARAMS)
    pd.testing.assert_frame_equal(frame_6d, before)


def test_bundle_round_trips_through_bytes(frame_6d: pd.DataFrame, bundle: ModelBundle) -> None:
    blob = bundle.to_bytes()
    restored = ModelBundle.from_bytes(blob)
    pd.testing.assert_frame_equal(restored.predict(frame_6d), bundle.predict(frame_6d))
    assert restored.meta == bundle.meta
    with pytest.raises(ValueError, match="magic"):
        ModelBundle.from_bytes(b"nope" + blob[4:])


def test_metadata_names_the_data_and_window(frame_6d: pd.DataFrame, bundle: ModelBundle) -> None:
    assert bundle.meta["data_fingerprint"] == data_fingerprint(frame_6d)
    assert bundle.meta["train_start_ms"] == int(frame_6d["open_time"].iloc[0])
    assert bundle.meta["train_end_ms"] == int(frame_6d["open_time"].iloc[-1])
    assert bundle.meta["validation_start_ms"] > bundle.meta["train_start_ms"]
    assert set(bundle.validation) >= {"high", "low", "close", "range", "direction"}
    changed = frame_6d.copy()
    changed["close"] = changed["close"] + 0.01 * (changed.index == 5)
    assert data_fingerprint(changed) != bundle.meta["data_fingerprint"]


def test_predictions_cover_every_row_and_are_consistent(
    frame_6d: pd.DataFrame, bundle: ModelBundle
) -> None:
    pred = bundle.predict(frame_6d)
    assert list(pred.columns) == list(PREDICTION_COLUMNS)
    assert len(pred) == len(frame_6d)
    assert (pred["target_open_time"] == frame_6d["open_time"] + STEP).all()
    assert (pred["high_next"] >= pred[["open_next", "close_next"]].max(axis=1)).all()
    assert (pred["low_next"] <= pred[["open_next", "close_next"]].min(axis=1)).all()
    assert (pred["close_lo"] <= pred["close_next"]).all()
    assert (pred["close_hi"] >= pred["close_next"]).all()
    assert pred["prob_up"].between(0, 1).all()


def test_no_signal_means_the_close_forecast_is_persistence(
    frame_6d: pd.DataFrame, bundle: ModelBundle
) -> None:
    # The synthetic closes are a random walk: validation must find no skill and fall back.
    assert bundle.weights["close"] == 0.0
    pred = bundle.predict(frame_6d)
    np.testing.assert_allclose(pred["close_next"], frame_6d["close"])
    assert bundle.direction_weight == 0.0
    assert (pred["prob_up"] == bundle.climatology).all()


def test_params_are_validated() -> None:
    assert resolve_params(None) == TrainParams()
    assert resolve_params({"seed": 7}).seed == 7
    with pytest.raises(ValueError, match="unknown"):
        resolve_params({"sede": 7})


def test_too_little_data_is_a_clear_error(frame_6d: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="too few"):
        train(frame_6d.iloc[:100], FAST_PARAMS)


def test_gappy_frames_train_and_predict(frame_6d: pd.DataFrame) -> None:
    gappy = frame_6d.drop(index=list(range(700, 760))).reset_index(drop=True)
    pred = train(gappy, FAST_PARAMS).predict(gappy)
    assert len(pred) == len(gappy)
    assert pred["close_next"].notna().all()


def test_predicting_from_trains_inputs_equals_predicting_from_the_frame(
    frame_6d: pd.DataFrame,
) -> None:
    fitted, inputs = train_with_inputs(frame_6d, FAST_PARAMS)
    assert fitted.to_bytes() == train(frame_6d, FAST_PARAMS).to_bytes()
    reused = fitted.predict(frame_6d, inputs)
    pd.testing.assert_frame_equal(reused, fitted.predict(frame_6d), check_exact=True)
    with pytest.raises(ValueError, match="inputs have"):
        fitted.predict(frame_6d.iloc[:-1], inputs)
