"""A slice of the real BTCUSDT 5m fixture: skill is never negative where gating applies."""

from __future__ import annotations

import pandas as pd
import pytest

from candlecast.ml.evaluate import walk_forward

pytestmark = pytest.mark.shared_data


def test_walk_forward_on_real_candles(real_frame: pd.DataFrame) -> None:
    last_days = real_frame.iloc[-16 * 288 :]
    report = walk_forward(last_days, folds=2, train_days=10, interval_ms=300_000)
    targets = report["targets"]
    assert targets["close"]["skill"] >= 0
    assert targets["open"]["skill"] >= 0
    assert targets["range"]["skill"] > 0
    assert targets["high"]["skill"] > 0 and targets["low"]["skill"] > 0
    assert report["direction"]["brier"] <= report["direction"]["brier_baseline"] + 1e-3
    assert 0.8 < report["close_interval"]["coverage"] < 0.97
