"""The ledger records each forecast's quantiles and HAR anchor, and returns them, on both
databases; /api/forecast and /api/futures serve them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.jobs import modeling
from candlecast.ml.quantiles import LEVELS, QUANTILE_COLUMNS, column
from candlecast.store import ledger
from tests.integration.api_support import client, load

STEP = 300_000


def test_ledger_stores_and_returns_quantiles(engine: Engine) -> None:
    last = load(engine, days=6)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    made = modeling.forecast_next(engine, symbol="BTCUSDT", interval="5m")
    assert made is not None and made["quantiles"] is not None
    assert set(made["quantiles"]) == set(QUANTILE_COLUMNS)
    assert "base_har_range_next" in made["baselines"]
    with engine.connect() as connection:
        entry = ledger.latest(connection, symbol="BTCUSDT", interval="5m")
        frame = ledger.frame(connection, symbol="BTCUSDT", interval="5m")
    assert entry is not None and entry["quantiles"] == made["quantiles"]
    row = frame.iloc[-1]
    for name in ("close", "high", "low", "range"):
        values = [row[column(name, q)] for q in LEVELS]
        assert values == sorted(values) and all(math.isfinite(v) for v in values)
    # The 90% close interval is the fan's 5-95% band.
    assert row["close_q050"] == pytest.approx(float(made["close_lo"]), rel=1e-9)
    assert row["close_q950"] == pytest.approx(float(made["close_hi"]), rel=1e-9)
    assert row["base_har_range_next"] == made["baselines"]["base_har_range_next"]
    load(engine, days=STEP / 86_400_000, first=last + STEP)
    modeling.score_ledger(engine, symbol="BTCUSDT", interval="5m")
    metrics = modeling.ledger_metrics(engine, symbol="BTCUSDT", interval="5m", start=None, end=None)
    assert metrics["rows"] == 1
    assert metrics["targets"]["range"]["har_baseline_mae"] is not None
    assert metrics["quantiles"]["rows"] == 1


def test_forecast_and_futures_serve_quantiles(engine: Engine, database_url: str) -> None:
    load(engine, days=6)
    modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6)
    made = modeling.forecast_next(engine, symbol="BTCUSDT", interval="5m")
    assert made is not None
    api = client(engine, database_url)
    body = api.get("/api/forecast").json()
    assert body["quantiles"] == made["quantiles"]
    assert body["quantiles"]["close_q050"] == pytest.approx(body["close_lo"])
    points = api.get("/api/futures").json()["points"]
    assert points[-1]["quantiles"] == made["quantiles"]
    # The Forecasts page's fan and coverage table read /api/ledger.
    window = api.get("/api/ledger?days=1").json()
    assert window["points"]["close_q250"][-1] == made["quantiles"]["close_q250"]
    assert window["points"]["close_q900"][-1] == made["quantiles"]["close_q900"]


def test_evaluate_reports_har_and_quantiles(
    database_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(engine, days=9)
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["evaluate", "--folds", "2", "--train-days", "5", "--json", str(report_path)]
    )
    assert result.exit_code == 0, result.output
    assert "close quantiles: coverage 50%" in result.output
    report = json.loads(report_path.read_text())
    for block in (report, *report["per_fold"]):
        rng = block["targets"]["range"]
        low, high = rng["har_skill_ci95"]
        assert low <= rng["har_skill"] <= high
        assert set(block["quantiles"]["close"]["coverage"]) == {"0.5", "0.8", "0.9", "0.95"}
