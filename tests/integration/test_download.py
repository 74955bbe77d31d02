"""`candlecast download` against the fake exchange's dumps, built from the real candles."""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.domain import ConfigError, DataFileError, parse_iso_utc
from candlecast.exchange.dumps_http import parse_checksum
from candlecast.jobs.download import parse_bound, plan
from candlecast.store import candle_reads, db
from tests.fake_exchange.fixtures import MAIN_CSV, FakeExchangeFactory
from tests.fake_exchange.market import kline_array
from tests.fake_exchange.server import FakeExchange

DECEMBER_2024 = "btcusdt-5m-2024-12-20_2024-12-31-full.csv"
Run = tuple[int, str, str]


@pytest.fixture
def dumps(fake_exchange: FakeExchangeFactory, monkeypatch: pytest.MonkeyPatch) -> FakeExchange:
    """The fake exchange replaying the main 5m fixture (2025-06-29 .. 2025-10-06 07:10)."""
    fake = fake_exchange(MAIN_CSV, start="2025-10-06T08:00:00Z", speed=0)
    monkeypatch.setenv("CANDLECAST_DUMPS_URL", fake.base_url)
    return fake


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    monkeypatch.setenv("CANDLECAST_HTTP_MAX_RETRIES", "1")
    runner = CliRunner()

    def invoke(*args: str) -> Run:
        result = runner.invoke(app, ["download", *args])
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _stored(database_url: str, symbol: str = "BTCUSDT", interval: str = "5m") -> list[list[str]]:
    engine = db.create_store_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = candle_reads.iter_rows(connection, symbol=symbol, interval=interval)
            return [[str(value) for value in row] for row in rows]
    finally:
        engine.dispose()


def _truth(fake: FakeExchange, first: str, last: str) -> list[list[str]]:
    lo, hi = parse_iso_utc(first), parse_iso_utc(last)
    rows = [row for row in fake.market.rows if lo <= row.open_time <= hi]
    return [[str(value) for value in kline_array(row)[:11]] for row in rows]


def _requests(fake: FakeExchange) -> dict[str, int]:
    body = httpx.get(f"{fake.base_url}/_fake/dumps").json()
    return {name: count for name, count in body["requests"].items() if name.endswith(".zip")}


def test_download_is_exact_field_for_field(run, dumps: FakeExchange, database_url: str) -> None:
    code, stdout, stderr = run(
        "BTCUSDT", "--interval", "5m", "--start", "2025-06-29", "--end", "2025-10-05"
    )
    assert code == 0, stderr
    truth = _truth(dumps, "2025-06-29T00:00:00Z", "2025-10-05T23:55:00Z")
    assert len(truth) == 99 * 288
    assert _stored(database_url) == truth
    assert f"{len(truth)} candles, {len(truth)} inserted" in stdout
    # June's last days and October's first come from daily files, the whole months in between
    # from monthly ones.
    fetched = _requests(dumps)
    assert {
        "BTCUSDT-5m-2025-07.zip",
        "BTCUSDT-5m-2025-09.zip",
        "BTCUSDT-5m-2025-06-29.zip",
        "BTCUSDT-5m-2025-10-05.zip",
    } <= set(fetched)
    assert "BTCUSDT-5m-2025-07-01.zip" not in fetched


def test_millisecond_dumps_before_2025_are_exact(
    run, fake_exchange: FakeExchangeFactory, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    fake = fake_exchange(DECEMBER_2024, start="2025-01-02T00:00:00Z", speed=0)
    monkeypatch.setenv("CANDLECAST_DUMPS_URL", fake.base_url)
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2024-12-20", "--end", "2024-12-30")
    assert code == 0, stderr
    assert _stored(database_url) == _truth(fake, "2024-12-20T00:00:00Z", "2024-12-30T23:55:00Z")


def test_end_is_inclusive(run, dumps: FakeExchange, database_url: str) -> None:
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-07-30", "--end", "2025-08-02")
    assert code == 0, stderr
    stored = _stored(database_url)
    assert len(stored) == 4 * 288
    assert stored[0][0] == str(parse_iso_utc("2025-07-30T00:00:00Z"))
    assert stored[-1][0] == str(parse_iso_utc("2025-08-02T23:55:00Z"))


def test_a_month_the_server_lacks_is_reported_in_one_line_and_skipped(
    run, dumps: FakeExchange, database_url: str
) -> None:
    code, stdout, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-05", "--end", "2025-05")
    assert code == 0, stderr
    lines = [line for line in stdout.splitlines() if "404" in line]
    assert lines == [f"BTCUSDT 5m 2025-05-01 .. 2025-05-31: not on {dumps.base_url} (404), skipped"]
    assert _stored(database_url) == []
    # October is incomplete on the server: its first five days exist as daily files only.
    code, stdout, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-10", "--end", "2025-11")
    assert code == 0, stderr
    lines = [line for line in stdout.splitlines() if "404" in line]
    assert lines == [f"BTCUSDT 5m 2025-10-06 .. 2025-11-30: not on {dumps.base_url} (404), skipped"]
    assert len(_stored(database_url)) == 5 * 288


def test_checksum_mismatch_is_refused_and_nothing_of_that_file_imported(
    run, dumps: FakeExchange, database_url: str
) -> None:
    name = "BTCUSDT-5m-2025-08.zip"
    httpx.post(f"{dumps.base_url}/_fake/dumps", json={"corrupt": [name]}).raise_for_status()
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-08", "--end", "2025-08")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, stderr
    assert name in lines[0] and "sha256" in lines[0] and "refused" in lines[0]
    assert _stored(database_url) == []
    # Downloaded twice (a transfer can be corrupted on the way), then refused.
    assert _requests(dumps)[name] == 2


def test_resume_downloads_nothing_already_imported(
    run, dumps: FakeExchange, database_url: str
) -> None:
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-07", "--end", "2025-07")
    assert code == 0, stderr
    httpx.post(f"{dumps.base_url}/_fake/dumps", json={"reset": True}).raise_for_status()
    code, stdout, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-07", "--end", "2025-08")
    assert code == 0, stderr
    assert _requests(dumps) == {"BTCUSDT-5m-2025-08.zip": 1}
    assert "1 files already imported" in stdout
    httpx.post(f"{dumps.base_url}/_fake/dumps", json={"reset": True}).raise_for_status()
    code, stdout, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-07-15", "--end", "2025-08")
    assert code == 0 and _requests(dumps) == {}, stderr
    truth = _truth(dumps, "2025-07-01T00:00:00Z", "2025-08-31T23:55:00Z")
    assert _stored(database_url) == truth


def test_bad_bounds_are_refused_naming_the_flag() -> None:
    assert parse_bound("--start", "2025-07", end=False) == date(2025, 7, 1)
    assert parse_bound("--end", "2024-02", end=True) == date(2024, 2, 29)
    assert parse_bound("--end", "2025-07-14", end=True) == date(2025, 7, 14)
    for bad in ("2025-13", "July", "2025-07-32", "2025/07"):
        with pytest.raises(ConfigError, match="--start"):
            parse_bound("--start", bad, end=False)


def test_plan_uses_monthly_files_for_whole_past_months_only() -> None:
    files = plan("BTCUSDT", "1m", date(2025, 6, 28), date(2025, 8, 2), today=date(2025, 8, 3))
    names = [item.name for item in files]
    assert names == [
        "BTCUSDT-1m-2025-06-28.zip",
        "BTCUSDT-1m-2025-06-29.zip",
        "BTCUSDT-1m-2025-06-30.zip",
        "BTCUSDT-1m-2025-07.zip",
        "BTCUSDT-1m-2025-08-01.zip",
        "BTCUSDT-1m-2025-08-02.zip",
    ]
    assert files[3].url_path == "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-07.zip"
    # The current month is never asked for as a monthly file.
    current = plan("BTCUSDT", "1m", date(2025, 8, 1), date(2025, 8, 31), today=date(2025, 9, 1))
    assert [item.monthly for item in current] == [True]
    current = plan("BTCUSDT", "1m", date(2025, 8, 1), date(2025, 8, 30), today=date(2025, 8, 31))
    assert not any(item.monthly for item in current)


def test_unknown_interval_and_start_after_end_are_one_line(run, dumps: FakeExchange) -> None:
    code, _, stderr = run("BTCUSDT", "-i", "7m", "--start", "2025-07")
    assert code == 1 and "7m" in stderr
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-08", "--end", "2025-07")
    assert code == 1 and "--start" in stderr


def test_an_unreachable_server_is_one_line_naming_it(
    run, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    monkeypatch.setenv("CANDLECAST_DUMPS_URL", "http://127.0.0.1:9")
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-07", "--end", "2025-07")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, stderr
    assert "http://127.0.0.1:9" in lines[0] and "failed 2 times" in lines[0]
    assert _stored(database_url) == []


def test_checksum_files_are_read_as_published() -> None:
    digest = "a" * 64
    name = "BTCUSDT-5m-2025-07.zip"
    assert parse_checksum(f"{digest}  {name}\n", url="u", file_name=name) == digest
    assert parse_checksum(digest.upper(), url="u", file_name=name) == digest
    with pytest.raises(DataFileError, match="checksum is for 'ETHUSDT"):
        parse_checksum(f"{digest}  ETHUSDT-5m-2025-07.zip", url="u", file_name=name)
    with pytest.raises(DataFileError, match="not a sha256"):
        parse_checksum("<html>404</html>", url="u", file_name=name)


def test_server_errors_are_retried(run, dumps: FakeExchange, database_url: str) -> None:
    fail = {"BTCUSDT-5m-2025-08.zip": 1, "BTCUSDT-5m-2025-08.zip.CHECKSUM": 1}
    httpx.post(f"{dumps.base_url}/_fake/dumps", json={"fail": fail}).raise_for_status()
    code, _, stderr = run("BTCUSDT", "-i", "5m", "--start", "2025-08", "--end", "2025-08")
    assert code == 0, stderr
    assert _stored(database_url) == _truth(dumps, "2025-08-01T00:00:00Z", "2025-08-31T23:55:00Z")
    assert _requests(dumps)["BTCUSDT-5m-2025-08.zip"] == 2
