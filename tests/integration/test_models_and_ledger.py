"""Registry, promotion, ledger and evaluation on SQLite and PostgreSQL with real candles."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.domain import JobAlreadyRunning
from candlecast.jobs import modeling
from candlecast.store import candle_reads, ledger, registry, runs
from candlecast.store.db import write_transaction
from candlecast.store.locks import job_lock
from candlecast.store.tables import forecasts
from tests.integration.api_support import load

STEP = 300_000


def _add_next(engine: Engine, after: int, count: int = 1) -> None:
    load(engine, days=count * STEP / 86_400_000, first=after + STEP)


def test_first_model_becomes_champion_and_retraining_skips_when_nothing_new(
    engine: Engine,
) -> None:
    load(engine, days=6)
    first = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    assert first.promoted and not first.skipped
    again = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    assert again.skipped and again.model_id == first.model_id
    with engine.connect() as connection:
        champion = registry.champion(connection, symbol="BTCUSDT", interval="5m")
        (run, skipped_run) = runs.recent_runs(connection, name="train")[1::-1][::-1][:2]
    assert champion is not None and champion.id == first.model_id
    assert champion.metrics["validation"]["close"]["baseline_mae"] > 0
    assert {run.status, skipped_run.status} == {runs.OK, runs.SKIPPED}


def test_training_is_reproducible_from_the_stored_artifact(engine: Engine) -> None:
    load(engine, days=6)
    outcome = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    forced = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6, force=True)
    with engine.connect() as connection:
        a = registry.get_model(connection, model_id=int(outcome.model_id or 0))
        b = registry.get_model(connection, model_id=int(forced.model_id or 0))
    assert a is not None and b is not None
    assert a.artifact_sha256 == b.artifact_sha256
    assert a.data_fingerprint == b.data_fingerprint


def test_promotion_rule_keeps_a_better_champion(engine: Engine) -> None:
    last = load(engine, days=7)
    good = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=7)
    _add_next(engine, last)
    # A challenger trained on very little history; whatever it scores, the decision and both
    # scores are recorded, and it is promoted only if not worse on the shared window.
    weak = modeling.train_model(
        engine,
        symbol="BTCUSDT",
        interval="5m",
        days=7,
        params={"n_estimators": 2, "min_val_skill": -10.0},
    )
    with engine.connect() as connection:
        record = registry.get_model(connection, model_id=int(weak.model_id or 0))
        champion = registry.champion(connection, symbol="BTCUSDT", interval="5m")
    assert record is not None and record.decision is not None and champion is not None
    decision = record.decision
    assert decision["champion_id"] == good.model_id
    assert decision["rows"] >= 100
    new_loss, champion_loss = decision["new_loss"], decision["champion_loss"]
    assert weak.promoted == (new_loss <= champion_loss)
    assert champion.id == (weak.model_id if weak.promoted else good.model_id)


def test_ledger_records_once_scores_on_close_and_never_rewrites(engine: Engine) -> None:
    last = load(engine, days=6)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    made = modeling.forecast_next(engine, symbol="BTCUSDT", interval="5m")
    assert made is not None and made["target_open_time"] == last + STEP
    assert made["pred_high"] >= max(made["pred_open"], made["pred_close"])
    assert made["pred_low"] <= min(made["pred_open"], made["pred_close"])
    assert modeling.forecast_next(engine, symbol="BTCUSDT", interval="5m") is None
    assert modeling.score_ledger(engine, symbol="BTCUSDT", interval="5m") == 0

    _add_next(engine, last)
    assert modeling.score_ledger(engine, symbol="BTCUSDT", interval="5m") == 1
    with engine.connect() as connection:
        entry = ledger.latest(connection, symbol="BTCUSDT", interval="5m")
        (real,) = candle_reads.read_candles(
            connection, symbol="BTCUSDT", interval="5m", start=last + STEP
        )
    assert entry is not None
    assert entry["real_close"] == real.close and entry["pred_close"] == made["pred_close"]
    # Scoring again changes nothing, and a hindsight forecast for a stored candle is refused.
    assert modeling.score_ledger(engine, symbol="BTCUSDT", interval="5m") == 0
    hindsight = ledger.Forecast(
        **{
            **made,
            "model_id": 999,
            "pred_close": Decimal("1"),
            "target_open_time": last + 2 * STEP,
            "asof_open_time": last + STEP,
        }
    )
    close_time = last + 3 * STEP - 1
    late = ledger.Forecast(**{**hindsight.__dict__, "made_at_exchange": close_time + 1})
    with write_transaction(engine) as connection:
        assert not ledger.record(connection, forecast=late, close_time=close_time)
    _add_next(engine, last + STEP)
    with write_transaction(engine) as connection:
        assert not ledger.record(connection, forecast=hindsight, close_time=close_time)
    metrics = modeling.ledger_metrics(engine, symbol="BTCUSDT", interval="5m", start=None, end=None)
    assert metrics["rows"] == 1
    assert metrics["targets"]["close"]["baseline_mae"] == pytest.approx(
        abs(float(real.close) - float(made["asof_close"]))
    )


def test_ledger_refuses_a_second_forecast_for_the_same_model_and_candle(engine: Engine) -> None:
    load(engine, days=6)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    made = modeling.forecast_next(engine, symbol="BTCUSDT", interval="5m")
    assert made is not None
    changed = ledger.Forecast(**{**made, "pred_close": made["pred_close"] + 1000})
    other_model = ledger.Forecast(**{**made, "model_id": made["model_id"] + 1})
    close_time = made["target_open_time"] + STEP - 1
    with write_transaction(engine) as connection:
        assert ledger.record(connection, forecast=changed, close_time=close_time) is False
        assert ledger.record(connection, forecast=other_model, close_time=close_time) is False
    with engine.connect() as connection:
        entry = ledger.latest(connection, symbol="BTCUSDT", interval="5m")
    assert entry is not None and entry["pred_close"] == made["pred_close"]


def test_a_corrupt_artifact_is_never_served(engine: Engine) -> None:
    load(engine, days=6)
    outcome = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    from candlecast.store.tables import model_artifacts

    with write_transaction(engine) as connection:
        connection.execute(update(model_artifacts).values(content=b"half a model"))
    with pytest.raises(Exception, match="corrupt"):
        modeling.load_bundle(engine, int(outcome.model_id or 0))


def test_job_lock_refuses_a_second_holder(engine: Engine) -> None:
    with job_lock(engine, "train:X"):
        failures: list[BaseException] = []

        def second() -> None:
            try:
                with job_lock(engine, "train:X"):
                    pass
            except JobAlreadyRunning as exc:
                failures.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
        assert len(failures) == 1
    with job_lock(engine, "train:X"):
        pass


def test_evaluate_json_follows_the_schema(
    database_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, days=9)
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--folds", "2", "--train-days", "5", "--json", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert {
        "symbol",
        "interval",
        "rows",
        "folds",
        "train_days",
        "targets",
        "close_interval",
        "direction",
        "per_fold",
    } <= set(report)
    assert (report["symbol"], report["interval"], report["folds"]) == ("BTCUSDT", "5m", 2)
    for name in ("open", "high", "low", "close", "range"):
        assert {"mae", "rmse", "mape", "smape", "baseline", "baseline_mae", "skill"} <= set(
            report["targets"][name]
        )
    assert {"level", "coverage", "mean_width"} <= set(report["close_interval"])
    assert {
        "n",
        "accuracy",
        "accuracy_ci95",
        "brier",
        "brier_baseline",
        "log_loss",
        "ece",
        "wda",
    } <= set(report["direction"])
    assert len(report["per_fold"]) == 2
    assert set(report["per_fold"][0]["targets"]) == set(report["targets"])


def test_forecasts_table_is_append_only_for_predictions(engine: Engine) -> None:
    """Scoring touches realized columns only: predicted ones stay as first written."""
    last = load(engine, days=6)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    made = modeling.forecast_next(engine, symbol="BTCUSDT", interval="5m")
    assert made is not None
    _add_next(engine, last)
    modeling.score_ledger(engine, symbol="BTCUSDT", interval="5m")
    with engine.connect() as connection:
        row = connection.execute(forecasts.select()).one()._mapping
    for name in ("pred_open", "pred_high", "pred_low", "pred_close", "prob_up", "close_lo"):
        assert row[name] == made[name]


def test_candles_filled_after_the_fact_get_their_predictions(engine: Engine) -> None:
    from candlecast.jobs import pipeline
    from candlecast.store import predictions
    from candlecast.store.tables import candles as candles_table

    last = load(engine, days=7)
    hole = [last - 40 * STEP + i * STEP for i in range(3)]
    with write_transaction(engine) as connection:
        kept = connection.execute(
            candles_table.select().where(candles_table.c.open_time.in_(hole))
        ).all()
        connection.execute(candles_table.delete().where(candles_table.c.open_time.in_(hole)))
    outcome = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=7)
    assert pipeline.fill_unpredicted(engine, symbol="BTCUSDT", interval="5m") == 0
    with write_transaction(engine) as connection:
        for row in kept:
            connection.execute(candles_table.insert().values(**row._mapping))
    assert pipeline.fill_unpredicted(engine, symbol="BTCUSDT", interval="5m") == 3
    with engine.connect() as connection:
        missing = predictions.unpredicted(
            connection,
            model_id=int(outcome.model_id or 0),
            symbol="BTCUSDT",
            interval="5m",
            start=hole[0],
            end=hole[-1],
        )
    assert missing == []
