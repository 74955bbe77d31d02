"""Result tables fit an 80-column terminal without cutting any cell short."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console, RenderableType
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.cli.tables import abbreviations, report_tables, status_table, validation_tables
from candlecast.store.gaps import PairSummary


def _figures(mae: float, base: str, strong: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "mae": mae,
        "rmse": mae * 1.4,
        "smape": 0.0612,
        "baseline": base,
        "baseline_mae": mae * 1.11,
        "skill": 0.1040,
        "strong_baseline": strong,
        "strong_skill": 0.0671 if strong else None,
        "har_skill": 0.0421,
        "har_skill_ci95": [-0.0112, 0.0954],
        **extra,
    }


VALIDATION: dict[str, Any] = {
    "open": _figures(12.0001, "persistence", None),
    "high": _figures(36.3413, "last_range_centred", "median_move_12"),
    "low": _figures(37.5567, "last_range_centred", "median_move_12"),
    "close": _figures(58.4006, "persistence", None),
    "range": _figures(37.2845, "last_range_centred", "median_range_12"),
    "direction": {"brier": 0.2499, "brier_baseline": 0.2498},
    "quantiles": {"pinball": 1.0},
}
REPORT: dict[str, Any] = {
    "folds": 6,
    "rows": 17_280,
    "train_days": 60,
    "targets": {k: v for k, v in VALIDATION.items() if k not in ("direction", "quantiles")},
}
LONG_NAMES = ("last_range_centred", "median_move_12", "median_range_12", "persistence")


def _render(renderable: RenderableType, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable, soft_wrap=False)
    return console.export_text()


def _fits(text: str, width: int = 80) -> None:
    assert "…" not in text, text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width, text


@pytest.mark.parametrize("width", [80, 120])
def test_validation_tables_fit_and_name_every_baseline_in_a_legend(width: int) -> None:
    text = _render(validation_tables(VALIDATION), width)
    _fits(text, width)
    for name in LONG_NAMES:
        assert name in text
    for figure in ("36.3413", "58.4006", "0.2499", "0.0421"):
        assert figure in text
    assert "quantiles" not in text


@pytest.mark.parametrize("width", [80, 120])
def test_report_tables_fit_and_keep_every_figure_whole(width: int) -> None:
    text = _render(report_tables(REPORT), width)
    _fits(text, width)
    for figure in ("37.2845", "0.0671", "0.0421 [-0.0112, 0.0954]", "6 folds"):
        assert figure in text
    for name in LONG_NAMES:
        assert name in text


def test_status_table_fits_with_whole_timestamps() -> None:
    pairs = [
        PairSummary("BTCUSDT", "5m", 1_751_457_900_000, 1_759_233_300_000, 25_919, 12, 345),
        PairSummary("1000SATSUSDT", "15m", 1_751_457_900_000, 1_759_233_300_000, 8_640, 0, 0),
    ]
    text = _render(status_table(pairs))
    _fits(text)
    assert "2025-07-02 12:05" in text and "1000SATSUSDT" in text


def test_abbreviations_are_short_and_unique() -> None:
    codes = abbreviations(["median_move_12", "median_range_12", "mean_range_12", "persistence"])
    assert codes["median_move_12"] == "mm12" and codes["persistence"] == "p"
    assert len(set(codes.values())) == 4
    assert codes["median_range_12"] != codes["mean_range_12"]


def test_status_command_fits_80_columns(tmp_path: Any) -> None:
    from sqlalchemy import insert

    from candlecast.store import db
    from candlecast.store.tables import candles

    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = db.create_store_engine(url)
    db.upgrade(engine)
    row = {"symbol": "BTCUSDT", "interval": "5m", "open": "1", "high": "1", "low": "1"}
    values = {**row, "close": "1", "volume": "1", "source": "file", "fetched_at": 0}
    with engine.begin() as connection:
        connection.execute(
            insert(candles),
            [
                {**values, "open_time": t, "close_time": t + 299_999}
                for t in (1_751_457_900_000, 1_751_458_200_000)
            ],
        )
    engine.dispose()
    result = CliRunner().invoke(app, ["status", "--database-url", url], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    _fits(result.stdout)
    assert "2025-07-02 12:05" in result.stdout
