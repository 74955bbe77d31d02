"""Metrics against small hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from candlecast.ml import metrics as m


def test_point_errors() -> None:
    t = [100.0, 200.0, 300.0, 400.0]
    p = [110.0, 190.0, 300.0, 440.0]
    assert m.mae(t, p) == pytest.approx((10 + 10 + 0 + 40) / 4)
    assert m.rmse(t, p) == pytest.approx(math.sqrt((100 + 100 + 0 + 1600) / 4))
    assert m.mape(t, p) == pytest.approx(100 * (0.1 + 0.05 + 0 + 0.1) / 4)
    assert m.smape(t, p) == pytest.approx(100 * (20 / 210 + 20 / 390 + 0 + 80 / 840) / 4)
    assert m.skill(5.0, 10.0) == pytest.approx(0.5)
    assert math.isnan(m.skill(1.0, 0.0))


def test_nan_pairs_are_ignored_and_zero_actuals_skip_mape() -> None:
    assert m.mae([1.0, np.nan, 3.0], [2.0, 5.0, np.nan]) == pytest.approx(1.0)
    assert m.mape([0.0, 10.0], [1.0, 11.0]) == pytest.approx(10.0)
    assert m.smape([0.0], [0.0]) == 0.0
    assert math.isnan(m.mae([], []))


def test_probability_scores() -> None:
    y = [1, 0, 1, 1]
    p = [0.8, 0.3, 0.6, 0.9]
    assert m.brier(y, p) == pytest.approx((0.04 + 0.09 + 0.16 + 0.01) / 4)
    expected_ll = -(math.log(0.8) + math.log(0.7) + math.log(0.6) + math.log(0.9)) / 4
    assert m.log_loss(y, p) == pytest.approx(expected_ll)
    # bins: 0.3 -> bin 3 (y 0), 0.6 -> 6 (y 1), 0.8 -> 8 (y 1), 0.9 -> 9 (y 1)
    assert m.ece(y, p) == pytest.approx((0.3 + 0.4 + 0.2 + 0.1) / 4)
    # two forecasts in one bin: |mean y - mean p| weighted by the bin's share
    assert m.ece([1, 0], [0.55, 0.55]) == pytest.approx(0.05)
    assert m.ece([1], [1.0]) == pytest.approx(0.0)


def test_wda_weights_hits_by_realized_move() -> None:
    r = [0.02, -0.01, 0.005, 0.0]
    called_up = [True, True, False, False]
    # hits: +2% called up (yes), -1% called up (no), +0.5% called down (no), flat called down (yes)
    assert m.wda(r, called_up) == pytest.approx(0.02 / 0.035)


def test_accuracy_and_wilson_interval() -> None:
    acc, hits, n = m.accuracy([1, 0, 1, 0], [1, 1, 1, 0])
    assert (acc, hits, n) == (0.75, 3, 4)
    lo, hi = m.wilson_interval(50, 100)
    # Wilson 95% for 50/100: 0.5 +- 1.96*sqrt(.25/100 + 1.96^2/40000) / (1 + 1.96^2/100)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert lo == pytest.approx(0.5 - half)
    assert hi == pytest.approx(0.5 + half)
    assert lo == pytest.approx(0.4038, abs=1e-4)
    assert m.wilson_interval(0, 10)[0] == 0.0
    assert all(math.isnan(x) for x in m.wilson_interval(0, 0))
