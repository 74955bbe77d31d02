"""The command line end to end: exit codes, one-line errors, and nothing written on failure."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from candlecast.cli import app
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.shared_data import shared_data_path


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    monkeypatch.setenv("CANDLECAST_HTTP_MAX_RETRIES", "1")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _one_line_error(code: int, stderr: str) -> str:
    assert code == 1
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_unknown_interval_is_one_clear_line(run) -> None:
    code, _, stderr = run("backfill", "--interval", "7m")
    assert "7m" in _one_line_error(code, stderr)


def test_unknown_symbol_from_the_exchange_writes_nothing(
    run, fake_exchange: FakeExchangeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_exchange(MAIN_CSV, start="2025-09-30T12:02:30Z", speed=0)
    monkeypatch.setenv("CANDLECAST_BINANCE_URL", fake.base_url)
    code, _, stderr = run("backfill", "--days", "2", "--symbol", "NOPEUSDT")
    assert "NOPEUSDT" in _one_line_error(code, stderr) or "symbol" in stderr.lower()
    code, stdout, _ = run("status", "--json")
    assert code == 0 and _stored(stdout) == []


def _stored(status_json: str) -> list[dict[str, object]]:
    """The pairs with candles (status also lists the followed pair, which has none yet)."""
    return [entry for entry in json.loads(status_json) if entry["count"]]


def test_import_export_and_status_through_the_cli(run, tmp_path: Path) -> None:
    source = shared_data_path("ethusdt-5m-2025-08-19_2025-09-20-full.csv")
    code, stdout, stderr = run("import", str(source))
    assert code == 0, stderr
    assert "ETHUSDT 5m: 9100 rows, 9100 inserted" in stdout
    code, stdout, _ = run(
        "export",
        "--symbol",
        "ETHUSDT",
        "--start",
        "2025-08-19T15:10:00Z",
        "--end",
        "2025-08-19T15:20:00Z",
    )
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and [r["close"] for r in rows] == ["4186.51", "4191.72", rows[2]["close"]]
    code, stdout, _ = run("status", "--json")
    (pair,) = _stored(stdout)
    assert (pair["symbol"], pair["count"], pair["gaps"]) == ("ETHUSDT", 9100, 0)
    assert pair["followed"] is False  # imported, but the service follows BTCUSDT 5m
    parquet = tmp_path / "eth.parquet"
    code, _, stderr = run(
        "export", "--symbol", "ETHUSDT", "--format", "parquet", "--output", str(parquet)
    )
    assert code == 0, stderr
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.num_rows == 9100 and table.column("close")[0].as_py() == "4186.51"


def test_bad_file_exits_non_zero_naming_file_and_line(run, tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-5m-2025-09-01.csv"
    path.write_text("1756684800000,1,2,0.5,1.5,10,1756685099999,15,3,1,1,0\nnot,a,row\n")
    code, _, stderr = run("import", str(path))
    line = _one_line_error(code, stderr)
    assert f"{path}:2" in line
    code, stdout, _ = run("status", "--json")
    assert _stored(stdout) == []
