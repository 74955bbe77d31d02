"""Multi-candle horizons: causality, realized values, quantiles, calibration and serialization."""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np
import pandas as pd
import pytest

import candlecast.ml.evaluate as ev
from candlecast.ml.bundle import FORMAT_MAGIC, ModelBundle
from candlecast.ml.horizons import (
    BASELINE_KEYS,
    CLOSE_COLUMNS,
    HORIZONS,
    QUANTILE_KEYS,
    RANGE_COLUMNS,
    HorizonForecast,
    realized,
)
from candlecast.ml.quantiles import coverage
from candlecast.ml.train import train
from tests.unit.ml.conftest import FAST_PARAMS, STEP, synthetic_frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_frame(8 * 288, seed=5)


@pytest.fixture(scope="module")
def bundle(frame: pd.DataFrame) -> ModelBundle:
    return train(frame.iloc[: 6 * 288].reset_index(drop=True), FAST_PARAMS)


def test_one_forecast_per_horizon_from_the_last_row(
    frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    history = frame.iloc[: 6 * 288 + 40].reset_index(drop=True)
    forecasts = bundle.forecast_horizons(history)
    assert [f.horizon for f in forecasts] == list(HORIZONS)
    last = history.iloc[-1]
    for f in forecasts:
        assert isinstance(f, HorizonForecast)
        assert f.origin_open_time == int(last["open_time"])
        assert f.end_open_time == f.origin_open_time + f.horizon * STEP
        assert f.last_close == pytest.approx(float(last["close"]))
        assert list(f.close_quantiles) == list(QUANTILE_KEYS)
        assert list(f.range_quantiles) == list(QUANTILE_KEYS)
        assert set(f.baselines) == set(BASELINE_KEYS)
        assert f.range > 0 and f.range == pytest.approx(f.range_quantiles["q500"], rel=0.2)
        assert all(np.isfinite(v) and v > 0 for v in f.baselines.values())
    # A longer horizon forecasts a wider range.
    assert forecasts[1].range > forecasts[0].range


def test_forecast_is_unchanged_when_later_candles_change(
    frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    cut = 6 * 288 + 100
    before = bundle.forecast_horizons(frame.iloc[: cut + 1].reset_index(drop=True))
    altered = frame.copy()
    later = altered.index > cut
    for col in ("open", "high", "low", "close"):
        altered.loc[later, col] *= 1.3
    altered.loc[later, "high"] *= 1.1
    table = bundle.predict_horizons(altered)
    assert table is not None
    origin = int(frame["open_time"].iloc[cut])
    for f in before:
        row = table[(table["open_time"] == origin) & (table["horizon"] == f.horizon)].iloc[0]
        assert row["range"] == pytest.approx(f.range, rel=1e-12)
        for key, col in zip(QUANTILE_KEYS, CLOSE_COLUMNS, strict=True):
            assert row[col] == pytest.approx(f.close_quantiles[key], rel=1e-12)
        for key in BASELINE_KEYS:
            assert row[key] == pytest.approx(f.baselines[key], rel=1e-12)
    # ... while the rows after the cut do change.
    untouched = bundle.predict_horizons(frame)
    assert untouched is not None
    assert not np.allclose(untouched["range"].to_numpy()[-5:], table["range"].to_numpy()[-5:])


def test_quantiles_are_monotone_and_ranges_non_negative(
    frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    table = bundle.predict_horizons(frame)
    assert table is not None
    for columns in (CLOSE_COLUMNS, RANGE_COLUMNS):
        q = table[list(columns)].to_numpy()
        assert np.isfinite(q).all()
        assert (np.diff(q, axis=1) >= 0).all()
    assert (table[list(RANGE_COLUMNS)].to_numpy() >= 0).all()
    # The close fan is centred on the last close (location 0).
    mid = table[CLOSE_COLUMNS[4]] / table["last_close"]
    assert np.abs(np.log(mid)).max() < 0.01


def test_realized_values_and_gaps() -> None:
    frame = synthetic_frame(40, seed=3)
    origin = int(frame["open_time"].iloc[10])
    close, rng = realized(frame, origin, 3, STEP) or (np.nan, np.nan)
    ahead = frame.iloc[11:14]
    assert close == float(frame["close"].iloc[13])
    assert rng == float(ahead["high"].max() - ahead["low"].min())
    gappy = frame.drop(index=12)
    assert realized(gappy, origin, 3, STEP) is None
    assert realized(gappy, origin, 1, STEP) is not None
    # Not yet closed: the last candle t+h is beyond the frame.
    assert realized(frame, int(frame["open_time"].iloc[-2]), 3, STEP) is None
    # Shuffled rows give the same answer.
    assert realized(frame.sample(frac=1, random_state=0), origin, 3, STEP) == (close, rng)


def test_round_trip_keeps_the_horizon_forecasts(frame: pd.DataFrame, bundle: ModelBundle) -> None:
    restored = ModelBundle.from_bytes(bundle.to_bytes())
    history = frame.iloc[: 6 * 288 + 10].reset_index(drop=True)
    assert restored.forecast_horizons(history) == bundle.forecast_horizons(history)
    assert restored.horizons == json.loads(json.dumps(bundle.horizons))


def _as_format_3(blob: bytes) -> bytes:
    """The same bundle as the previous code wrote it: version 3, no horizons key."""
    doc = json.loads(zlib.decompress(blob[6:]))
    del doc["horizons"]
    doc["format_version"] = 3
    body = zlib.compress(json.dumps(doc, sort_keys=True).encode(), 6)
    return FORMAT_MAGIC + (3).to_bytes(2, "big") + body


def test_format_3_bundles_load_and_predict_as_before(
    frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    old = ModelBundle.from_bytes(_as_format_3(bundle.to_bytes()))
    history = frame.iloc[: 6 * 288 + 30].reset_index(drop=True)
    assert old.horizons is None
    assert old.forecast_horizons(history) == []
    assert old.predict_horizons(history) is None
    pd.testing.assert_frame_equal(old.predict(history), bundle.predict(history))


def test_conformal_coverage_on_a_held_out_slice_of_real_candles(real_frame: pd.DataFrame) -> None:
    # Train on 30 days, forecast the next 15 days (never seen, not even by calibration).
    train_rows = 30 * 288
    fitted = train(real_frame.iloc[:train_rows].reset_index(drop=True), FAST_PARAMS)
    test = real_frame.iloc[train_rows : train_rows + 15 * 288].reset_index(drop=True)
    table = fitted.predict_horizons(test)
    assert table is not None
    table = table[table["open_time"] >= test["open_time"].iloc[288]]
    for h in HORIZONS:
        rows = table[table["horizon"] == h]
        real = [realized(test, int(t), h, STEP) for t in rows["open_time"]]
        keep = np.asarray([r is not None for r in real])
        values = np.asarray([r for r in real if r is not None])
        rows = rows[keep]
        assert len(rows) > 3000
        for col, columns in ((0, CLOSE_COLUMNS), (1, RANGE_COLUMNS)):
            cov = coverage(values[:, col], rows[list(columns)].to_numpy())
            # Overlapping targets on 15 days: a wider band than the pooled +-1.5 points.
            for level, share in cov.items():
                assert abs(share - float(level)) < 0.06, (h, col, cov)


def test_walk_forward_reports_the_horizons_block() -> None:
    frame = synthetic_frame(9 * 288, seed=7)
    report: dict[str, Any] = ev.walk_forward(
        frame, folds=2, train_days=4, interval_ms=STEP, params=FAST_PARAMS
    )
    for block in (report["horizons"], *(f["horizons"] for f in report["per_fold"])):
        assert "note" in block
        for h in HORIZONS:
            fig = block[str(h)]
            assert fig["rows"] > 0 and fig["bootstrap_block"] == 72
            assert set(fig["range"]["baselines"]) == {"persistence", "random_walk", "har"}
            assert set(fig["range"]["coverage"]) == {"0.5", "0.8", "0.9", "0.95"}
            assert len(fig["range"]["har_skill_ci95"]) == 2
            assert fig["close"]["crps_baseline_name"] == "random_walk_gaussian"
            assert fig["close"]["crps_skill"] is not None
    pooled = report["horizons"]["3"]["rows"]
    assert pooled == sum(f["horizons"]["3"]["rows"] for f in report["per_fold"])
    json.dumps(report, allow_nan=False)
