"""`candlecast evaluate`'s job reports its progress fold by fold."""

from __future__ import annotations

from sqlalchemy import Engine

from candlecast.jobs import modeling
from tests.integration.api_support import load

FAST = {"n_estimators": 5, "classifier_estimators": 5, "min_val_skill": -10.0}


def test_evaluate_names_each_fold_as_it_begins(engine: Engine) -> None:
    load(engine, days=9)
    heard: list[str] = []
    report = modeling.evaluate(
        engine,
        symbol="BTCUSDT",
        interval="5m",
        start=None,
        end=None,
        folds=2,
        train_days=5,
        params=FAST,
        on_stage=heard.append,
    )
    assert heard[0] == "loading candles"
    folds = [stage.split(": ", 1)[1] for stage in heard[1:]]
    assert folds == ["fold 1 of 2, training and testing", "fold 2 of 2, training and testing"]
    assert all(stage.startswith("walk-forward on ") for stage in heard[1:])
    assert len(report["per_fold"]) == 2
