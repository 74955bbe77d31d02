"""`candlecast pairs` and `--pairs` end to end, on both databases, against a fake exchange
serving BTCUSDT and ETHUSDT at 5m: add (all or nothing), list, remove, remove --purge, the
followed pairs in `status`, and one backfill over two pairs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, Table, func, select
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.store.tables import candles, job_runs
from tests.fake_exchange import MarketSpec
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.shared_data import shared_data_path

pytestmark = pytest.mark.shared_data

ETH_CSV = "ethusdt-5m-2025-08-19_2025-09-20-full.csv"
NOW = "2025-09-10T00:04:00Z"  # inside both files

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    database_url: str, fake_exchange: FakeExchangeFactory, monkeypatch: pytest.MonkeyPatch
) -> Run:
    fake = fake_exchange(
        MAIN_CSV, start=NOW, speed=0, markets=[MarketSpec(shared_data_path(ETH_CSV))]
    )
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    monkeypatch.setenv("CANDLECAST_BINANCE_URL", fake.base_url)
    monkeypatch.setenv("CANDLECAST_HTTP_MAX_RETRIES", "1")
    # The window of ingest and of a backfill without --days.
    monkeypatch.setenv("CANDLECAST_BACKFILL_DAYS", "2")
    monkeypatch.delenv("CANDLECAST_PAIRS", raising=False)
    monkeypatch.setenv("CANDLECAST_SYMBOL", "BTCUSDT")
    monkeypatch.setenv("CANDLECAST_INTERVAL", "5m")
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), input=stdin)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _listed(run: Run) -> list[dict[str, object]]:
    code, stdout, stderr = run("pairs", "list", "--json")
    assert code == 0, stderr
    pairs: list[dict[str, object]] = json.loads(stdout)["pairs"]
    return pairs


def _names(entries: list[dict[str, object]]) -> list[str]:
    return [f"{e['symbol']}:{e['interval']}" for e in entries]


def _count(engine: Engine, table: Table, symbol: str) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(table).where(table.c.symbol == symbol)
        return int(connection.execute(query).scalar_one())


def test_add_list_remove_and_status(run: Run) -> None:
    # The configured pair is followed first, as the service would follow it.
    assert _names(_listed(run)) == ["BTCUSDT:5m"]

    code, stdout, stderr = run("pairs", "add", "ETHUSDT:5m", "BTCUSDT:1m")
    # BTCUSDT is listed, but the fake serves it at 5m only: the exchange refuses 1m.
    assert code == 1
    assert "BTCUSDT:1m" in stderr and "nothing added" in stderr and "ETHUSDT" not in stderr
    assert _names(_listed(run)) == ["BTCUSDT:5m"]  # not even ETHUSDT:5m, which is listed

    code, _, stderr = run("pairs", "add", "NOPEUSDT:5m")
    assert code == 1 and "NOPEUSDT:5m" in stderr
    assert _names(_listed(run)) == ["BTCUSDT:5m"]

    code, _, stderr = run("pairs", "add", "ETHUSDT")
    assert code == 1 and "ETHUSDT" in stderr and "SYMBOL:INTERVAL" in stderr

    code, stdout, stderr = run("pairs", "add", "ETHUSDT:5m")
    assert code == 0, stderr
    assert "now following ETHUSDT:5m" in stdout and "within about 5 s" in stdout
    code, _, stderr = run("pairs", "add", "ethusdt:5m")
    assert code == 1 and "already followed: ETHUSDT:5m" in stderr

    entries = _listed(run)
    assert _names(entries) == ["BTCUSDT:5m", "ETHUSDT:5m"]
    eth = entries[1]
    assert set(eth) == {
        "symbol",
        "interval",
        "added_at",
        "backfilled",
        "backfilled_at",
        "last_candle_time",
        "champion_id",
    }
    assert eth["backfilled"] is False and eth["last_candle_time"] is None
    assert eth["champion_id"] is None
    code, stdout, _ = run("pairs", "list")
    assert code == 0 and "ETHUSDT" in stdout and "no candles yet" in stdout

    # status: both followed, neither has candles yet, and says so.
    code, stdout, _ = run("status", "--json")
    assert code == 0
    empty = {"followed": True, "first": None, "last": None, "count": 0, "gaps": 0, "missing": 0}
    assert json.loads(stdout) == [
        {"symbol": symbol, "interval": "5m", **empty} for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    code, stdout, _ = run("status")
    assert code == 0 and stdout.count("no candles yet") == 2

    code, stdout, stderr = run("pairs", "remove", "ETHUSDT:5m")
    assert code == 0, stderr
    assert "stopped following ETHUSDT:5m" in stdout and "data stays" in stdout
    assert _names(_listed(run)) == ["BTCUSDT:5m"]
    code, _, stderr = run("pairs", "remove", "ETHUSDT:5m")
    assert code == 1 and "ETHUSDT:5m is not followed" in stderr


def test_backfill_two_pairs_then_purge_one(run: Run, engine: Engine) -> None:
    code, stdout, stderr = run("backfill", "--days", "2", "--pairs", "BTCUSDT:5m,ETHUSDT:5m")
    assert code == 0, stderr
    # One result line per pair, each naming its pair; 2 days of closed 5m candles each.
    for pair in ("BTCUSDT:5m", "ETHUSDT:5m"):
        (line,) = [line for line in stdout.splitlines() if line.startswith(f"backfill {pair}:")]
        assert "575 inserted" in line, stdout
    assert _count(engine, candles, "BTCUSDT") == 575
    assert _count(engine, candles, "ETHUSDT") == 575

    # Stored but not followed yet: status says so; --pairs all runs the followed one only.
    code, stdout, _ = run("status", "--json")
    by_symbol = {entry["symbol"]: entry for entry in json.loads(stdout)}
    assert by_symbol["BTCUSDT"]["followed"] is True and by_symbol["BTCUSDT"]["count"] == 575
    assert by_symbol["ETHUSDT"]["followed"] is False and by_symbol["ETHUSDT"]["count"] == 575
    code, stdout, _ = run("status")
    (row,) = [line.split() for line in stdout.splitlines() if line.startswith("ETHUSDT:5m")]
    assert row[-1] == "no" and "followed no: stored, but the service does not update" in stdout
    code, stdout, stderr = run("ingest", "--pairs", "all")
    assert code == 0, stderr
    assert stdout.startswith("ingest: ") and "ETHUSDT" not in stdout

    code, _, stderr = run("pairs", "add", "ETHUSDT:5m")
    assert code == 0, stderr
    eth = _listed(run)[1]
    assert eth["last_candle_time"] is not None and eth["backfilled"] is False
    # A backfill of a followed pair marks it backfilled, as the service's does.
    code, stdout, stderr = run("backfill", "--days", "2", "--pairs", "ETHUSDT:5m")
    assert code == 0, stderr
    assert "backfill: 0 fetched, 0 inserted" in stdout
    assert _listed(run)[1]["backfilled"] is True
    code, stdout, stderr = run("ingest", "--pairs", "all")
    assert code == 0, stderr
    assert "ingest BTCUSDT:5m:" in stdout and "ingest ETHUSDT:5m:" in stdout

    # --purge asks first; "no" deletes nothing and keeps the pair followed.
    code, _, stderr = run("pairs", "remove", "ETHUSDT:5m", "--purge", stdin="n\n")
    assert code == 1 and "nothing deleted" in stderr
    assert _count(engine, candles, "ETHUSDT") == 575
    assert "ETHUSDT:5m" in _names(_listed(run))
    code, stdout, stderr = run("pairs", "remove", "ETHUSDT:5m", "--purge", "--yes")
    assert code == 0, stderr
    assert "stopped following ETHUSDT:5m" in stdout and "575 candles" in stdout
    assert _count(engine, candles, "ETHUSDT") == 0
    assert _count(engine, job_runs, "ETHUSDT") == 0
    assert _count(engine, candles, "BTCUSDT") == 575
    assert _names(_listed(run)) == ["BTCUSDT:5m"]
    code, stdout, _ = run("status", "--json")
    assert [entry["symbol"] for entry in json.loads(stdout)] == ["BTCUSDT"]


def test_pairs_flag_errors_name_the_flag(run: Run) -> None:
    code, _, stderr = run("backfill", "--pairs", "BTCUSDT5m")
    assert code == 1 and "--pairs" in stderr and "BTCUSDT5m" in stderr
    code, _, stderr = run("backfill", "--pairs", "BTCUSDT:5m", "--symbol", "ETHUSDT")
    assert code == 1 and "--pairs" in stderr and "--symbol" in stderr
    # One unknown pair among several: the others still run, the exit says it failed.
    code, stdout, stderr = run("backfill", "--days", "1", "--pairs", "NOPEUSDT:5m,ETHUSDT:5m")
    assert code == 1 and "NOPEUSDT:5m" in stderr
    assert "backfill ETHUSDT:5m: 287 fetched, 287 inserted" in stdout
