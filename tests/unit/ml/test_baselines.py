"""Both naives on tiny hand-computed frames, and how the bundle blends toward them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from candlecast.ml.baselines import (
    BASELINE_NAMES,
    STRONG_BASELINE_NAMES,
    baseline_levels,
    baseline_returns,
)
from candlecast.ml.bundle import FORMAT_MAGIC, ModelBundle
from candlecast.ml.train import train
from tests.unit.ml.conftest import FAST_PARAMS, START, STEP


def _tiny(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    o, h, lo, c = (list(col) for col in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "open_time": START + STEP * np.arange(len(rows), dtype=np.int64),
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": 1.0,
        }
    )


def _levels(frame: pd.DataFrame) -> pd.DataFrame:
    return baseline_levels(frame["close"], baseline_returns(frame, STEP))


def test_last_range_centred_on_the_last_close() -> None:
    frame = _tiny([(100, 104, 98, 101), (101, 110, 90, 100), (100, 103, 99, 102)])
    lv = _levels(frame)
    # Row 1: last range 110 - 90 = 20 centred on the last close 100.
    assert lv.loc[1, "base_high_next"] == pytest.approx(110.0)
    assert lv.loc[1, "base_low_next"] == pytest.approx(90.0)
    assert lv.loc[1, "base_range_next"] == pytest.approx(20.0)
    assert list(lv.loc[1, ["base_open_next", "base_close_next"]]) == [100.0, 100.0]
    # Row 2: range 4 around 102; row 0 needs no history either: range 6 around 101.
    assert (lv.loc[2, "base_high_next"], lv.loc[2, "base_low_next"]) == pytest.approx((104, 100))
    assert (lv.loc[0, "base_high_next"], lv.loc[0, "base_low_next"]) == pytest.approx((104, 98))
    assert BASELINE_NAMES["high"] == BASELINE_NAMES["range"] == "last_range_centred"


def test_rolling_median_of_moves_from_the_previous_close() -> None:
    frame = _tiny(
        [(100, 101, 99, 100), (100, 102, 99, 100), (100, 104, 98, 100), (100, 101, 97, 100)]
    )
    lv = _levels(frame)
    # Moves (log ratios) of rows 1..3 from the previous close 100: up to 102, 104, 101 and down
    # to 99, 98, 97. Row 3's medians over its 12-candle window (rows with a previous close):
    # up to 102, down to 98; range (h - l) / prev close: 0.03, 0.06, 0.04 -> 0.04 -> 4 USD.
    assert STRONG_BASELINE_NAMES == {
        "high": "median_move_12",
        "low": "median_move_12",
        "range": "median_range_12",
    }
    assert lv.loc[3, "strong_base_high_next"] == pytest.approx(102.0)
    assert lv.loc[3, "strong_base_low_next"] == pytest.approx(98.0)
    assert lv.loc[3, "strong_base_range_next"] == pytest.approx(4.0)
    # Row 0 has no previous close: its own half-range, log(101/99)/2, around the close.
    half = np.log(101 / 99) / 2
    assert lv.loc[0, "strong_base_high_next"] == pytest.approx(100 * np.exp(half))


@pytest.fixture(scope="module")
def bundle(frame_6d: pd.DataFrame) -> ModelBundle:
    return train(frame_6d, FAST_PARAMS)


def test_gate_baseline_is_the_best_baseline_on_validation(bundle: ModelBundle) -> None:
    assert bundle.gate_baselines["close"] == "persistence"
    for name in ("high", "low", "range"):
        v = bundle.validation[name]
        assert v["baseline"] == "last_range_centred"
        assert v["strong_baseline"] == STRONG_BASELINE_NAMES[name]
        assert (v["har_baseline"], v["ewma_baseline"]) == ("har_levels", "ewma_range")
        maes = {
            v[f"{kind}baseline"]: v[f"{kind}baseline_mae"]
            for kind in ("", "strong_", "har_", "ewma_")
        }
        gate = bundle.gate_baselines[name]
        assert v["gate_baseline"] == gate
        assert maes[gate] == min(maes.values())
        # Gating compares against the best baseline (naives and anchors), so a weaker one can
        # never be the fallback.
        skills = [v["skill"], v["strong_skill"], v["har_skill"], v["ewma_skill"]]
        assert v["gate_skill"] == pytest.approx(min(skills))
        assert v["weight"] == 0.0 or v["gate_skill"] >= FAST_PARAMS.get("min_val_skill", 0.005)


def test_zero_weight_forecasts_the_gate_baseline(
    frame_6d: pd.DataFrame, bundle: ModelBundle
) -> None:
    forced = ModelBundle.from_bytes(bundle.to_bytes())
    forced.weights = dict.fromkeys(forced.weights, 0.0)
    forced.gate_baselines = {
        **forced.gate_baselines,
        "high": "last_range_centred",
        "low": "median_move_12",
    }
    pred = forced.predict(frame_6d)
    np.testing.assert_allclose(pred["high_next"], pred["base_high_next"])
    np.testing.assert_allclose(pred["low_next"], pred["strong_base_low_next"])


def test_version_1_bundles_blend_toward_the_strong_naive(
    frame_6d: pd.DataFrame, bundle: ModelBundle
) -> None:
    blob = bundle.to_bytes()
    restored = ModelBundle.from_bytes(blob)
    assert restored.gate_baselines == bundle.gate_baselines
    old = ModelBundle.from_bytes(FORMAT_MAGIC + (1).to_bytes(2, "big") + blob[6:])
    old.gate_baselines = {}
    assert old.gate_column("high") == "strong_y_high"
    assert old.gate_column("close") == "y_close"
    with pytest.raises(ValueError, match="not supported"):
        ModelBundle.from_bytes(FORMAT_MAGIC + (99).to_bytes(2, "big") + blob[6:])
