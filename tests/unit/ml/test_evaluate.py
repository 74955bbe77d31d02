"""Walk-forward folds, the report schema and prospective scoring."""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

import candlecast.ml.evaluate as ev
from candlecast.ml.features import FEATURE_WINDOW
from candlecast.ml.train import train
from tests.unit.ml.conftest import FAST_PARAMS, STEP, synthetic_frame

TARGET_KEYS = {"mae", "rmse", "mape", "smape", "baseline", "baseline_mae", "skill"}
STRONG_KEYS = {"strong_baseline", "strong_baseline_mae", "strong_skill"}
ANCHOR_KEYS = {
    f"{p}_{k}" for p in ("har", "ewma") for k in ("baseline", "baseline_mae", "skill", "skill_ci95")
}
DIRECTION_KEYS = {"n", "accuracy", "accuracy_ci95", "brier", "brier_baseline", "log_loss"}
DIRECTION_KEYS |= {"ece", "wda"}


def test_fold_plan_purges_and_never_overlaps() -> None:
    times = synthetic_frame(12 * 288)["open_time"].to_numpy()
    plan = ev.fold_plan(times, folds=4, train_days=5, interval_ms=STEP)
    assert len(plan) == 4
    for fold in plan:
        assert fold["train_end_ms"] - fold["train_start_ms"] == 5 * 288 * STEP
        assert fold["test_start_ms"] - fold["train_end_ms"] == FEATURE_WINDOW * STEP
        assert fold["train_start_ms"] >= times[0]
    for a, b in itertools.pairwise(plan):
        assert a["test_end_ms"] == b["test_start_ms"]
    assert plan[-1]["test_end_ms"] == times[-1] + STEP


@pytest.fixture(scope="module")
def report_and_calls() -> tuple[dict[str, Any], list[tuple[pd.DataFrame, pd.DataFrame]]]:
    frame = synthetic_frame(10 * 288, seed=9)
    calls: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    real_train = train

    class SpyBundle:
        def __init__(self, bundle: Any, data: pd.DataFrame) -> None:
            self._bundle, self._data = bundle, data

        def __getattr__(self, name: str) -> Any:
            return getattr(self._bundle, name)

        def predict(self, pred_frame: pd.DataFrame) -> pd.DataFrame:
            calls.append((self._data, pred_frame))
            return self._bundle.predict(pred_frame)  # type: ignore[no-any-return]

    def spy_train(data: pd.DataFrame, params: Any) -> Any:
        return SpyBundle(real_train(data, params), data)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev, "train", spy_train)
        report = ev.walk_forward(
            frame, folds=3, train_days=4, interval_ms=STEP, params=FAST_PARAMS, symbol="SYN"
        )
    return report, calls


def test_no_test_candle_is_ever_in_a_training_window(report_and_calls: Any) -> None:
    report, calls = report_and_calls
    assert len(calls) == 3
    for fold, (train_frame, pred_frame) in zip(report["per_fold"], calls, strict=True):
        train_times = set(train_frame["open_time"])
        last_train = max(train_times)
        assert last_train < fold["test_start_ms"] - FEATURE_WINDOW * STEP
        # Nothing the fold predicted from, nor any candle it forecast, was trained on.
        assert not train_times & set(pred_frame["open_time"])
        test_candles = range(fold["test_start_ms"], fold["test_end_ms"], STEP)
        assert not train_times & set(test_candles)
        assert min(pred_frame["open_time"]) > last_train


def test_report_schema(report_and_calls: Any) -> None:
    report, _ = report_and_calls
    assert set(report) == {
        "symbol",
        "interval",
        "rows",
        "folds",
        "train_days",
        "targets",
        "close_interval",
        "direction",
        "per_fold",
        "quantiles",
        "horizons",
    }
    assert report["symbol"] == "SYN" and report["interval"] == "5m"
    assert set(report["targets"]) == {"open", "high", "low", "close", "range"}
    for name, block in report["targets"].items():
        strong = name in {"high", "low", "range"}
        assert set(block) == TARGET_KEYS | (STRONG_KEYS | ANCHOR_KEYS if strong else set())
        assert block["baseline"] == ("last_range_centred" if strong else "persistence")
    assert set(report["close_interval"]) == {"level", "coverage", "mean_width"}
    assert set(report["direction"]) == DIRECTION_KEYS
    assert len(report["per_fold"]) == 3
    assert sum(f["rows"] for f in report["per_fold"]) == report["rows"]
    for fold in report["per_fold"]:
        assert {"start", "end", "targets", "close_interval", "direction"} <= set(fold)
        assert set(fold["targets"]["range"]) == TARGET_KEYS | STRONG_KEYS | ANCHOR_KEYS
        assert fold["quantiles"]["rows"] == fold["rows"]
        assert set(fold["gate_baselines"]) == {"open", "high", "low", "close", "range"}
    # Random-walk closes: gated to persistence, so skill is exactly zero.
    assert report["targets"]["close"]["skill"] == 0.0
    assert 0.75 < report["close_interval"]["coverage"] < 1.0


def test_prospective_metrics_matches_a_hand_built_pair() -> None:
    frame = synthetic_frame(4 * 288, seed=11)
    bundle = train(frame.iloc[: 3 * 288], FAST_PARAMS)
    preds = bundle.predict(frame.iloc[: 3 * 288 + 50]).iloc[-50:]
    out = ev.prospective_metrics(preds, frame)
    real = frame.set_index("open_time").loc[preds["target_open_time"]]
    assert out["rows"] == 50
    expected = np.mean(np.abs(real["close"].to_numpy() - preds["close_next"].to_numpy()))
    assert out["targets"]["close"]["mae"] == pytest.approx(expected)
    up = real["close"].to_numpy() > preds["last_close"].to_numpy()
    assert out["direction"]["n"] == 50
    assert out["direction"]["brier"] == pytest.approx(np.mean((preds["prob_up"] - up) ** 2))
    real_range = (real["high"] - real["low"]).to_numpy()
    asof = frame.set_index("open_time").loc[preds["open_time"]]
    centred = (asof["high"] - asof["low"]).to_numpy()
    rng = out["targets"]["range"]
    assert rng["baseline_mae"] == pytest.approx(np.mean(np.abs(real_range - centred)))
    strong = preds["strong_base_range_next"].to_numpy()
    assert rng["strong_baseline_mae"] == pytest.approx(np.mean(np.abs(real_range - strong)))
    assert rng["strong_skill"] == pytest.approx(1 - rng["mae"] / rng["strong_baseline_mae"])
    assert rng["har_baseline_mae"] == pytest.approx(
        np.mean(np.abs(real_range - preds["base_har_range_next"].to_numpy()))
    )
    # Ledger rows without baseline columns: the naives are recomputed from the candles, with the
    # same figures; the fitted anchors cannot be, and are null.
    bare = preds.drop(columns=[c for c in preds.columns if "base_" in c and "prob" not in c])
    again = ev.prospective_metrics(bare, frame)
    assert again["direction"] == out["direction"]
    assert again["close_interval"] == out["close_interval"]
    for name, block in out["targets"].items():
        assert {k: again["targets"][name][k] for k in block if k not in ANCHOR_KEYS} == {
            k: v for k, v in block.items() if k not in ANCHOR_KEYS
        }
    assert again["targets"]["range"]["har_skill"] is None
    assert again["quantiles"]["close"]["coverage"] == out["quantiles"]["close"]["coverage"]
    assert again["quantiles"]["close"]["crps_skill"] is None
    # A forecast whose candle has not closed yet is simply not scored.
    assert ev.prospective_metrics(preds, frame.iloc[:10])["rows"] == 0


def test_on_fold_hears_each_fold_once_in_order_before_its_training(
    report_and_calls: Any,
) -> None:
    report, _calls = report_and_calls
    frame = synthetic_frame(10 * 288, seed=9)
    events: list[tuple[Any, ...]] = []
    real_train = train

    def noted_train(data: pd.DataFrame, params: Any) -> Any:
        events.append(("train", int(data["open_time"].iloc[-1])))
        return real_train(data, params)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev, "train", noted_train)
        heard = ev.walk_forward(
            frame,
            folds=3,
            train_days=4,
            interval_ms=STEP,
            params=FAST_PARAMS,
            symbol="SYN",
            on_fold=lambda number, total: events.append(("fold", number, total)),
        )
    assert [e for e in events if e[0] == "fold"] == [("fold", 1, 3), ("fold", 2, 3), ("fold", 3, 3)]
    assert [e[0] for e in events] == ["fold", "train"] * 3
    ends = [e[1] for e in events if e[0] == "train"]
    assert ends == sorted(ends) and len(set(ends)) == 3
    # Listening changes nothing: the report is the one made without a callback.
    assert json.dumps(heard, sort_keys=True, default=str) == json.dumps(
        report, sort_keys=True, default=str
    )
