"""Import, export, rollup and bad input, on SQLite and PostgreSQL, with the real candles."""

from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from candlecast import jobs
from candlecast.domain import DataFileError, InvalidInterval, iso_utc, parse_iso_utc
from candlecast.files_export import write_csv
from candlecast.rollup import roll_up
from candlecast.store import candle_reads, gaps, runs
from tests.shared_data import shared_data_path

FIXTURES = [
    "btcusdt-5m-2025-06-29_2025-10-06.csv",
    "btcusdt-5m-2024-12-20_2024-12-31-full.csv",
    "btcusdt-1h-2024-07-19_2026-07-19-full.csv",
    "ethusdt-5m-2025-08-19_2025-09-20-full.csv",
]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _export(engine: Engine, symbol: str, interval: str) -> list[dict[str, str]]:
    buffer = io.StringIO()
    with engine.connect() as connection:
        write_csv(candle_reads.iter_rows(connection, symbol=symbol, interval=interval), buffer)
    buffer.seek(0)
    return list(csv.DictReader(buffer))


def _same_instant_to_the_second(exported: str, original: str) -> bool:
    return parse_iso_utc(exported) // 1000 == parse_iso_utc(original) // 1000


@pytest.mark.parametrize("name", FIXTURES)
def test_import_then_export_round_trips_exactly(engine: Engine, name: str) -> None:
    path = shared_data_path(name)
    report = jobs.import_file(engine, path=path, symbol=None, interval=None)
    original = _read_csv(path)
    exported = _export(engine, report.symbol, report.interval)
    assert report.written.inserted == len(original) == len(exported)
    for before, after in zip(original, exported, strict=True):
        for column, value in before.items():
            if column == "close_time":
                assert _same_instant_to_the_second(after[column], value)
            else:
                assert after[column] == value, (column, before["open_time"])


def test_eth_and_btc_live_side_by_side(engine: Engine) -> None:
    eth = jobs.import_file(engine, path=shared_data_path(FIXTURES[3]), symbol=None, interval=None)
    btc = jobs.import_file(engine, path=shared_data_path(FIXTURES[1]), symbol=None, interval=None)
    assert (eth.symbol, btc.symbol) == ("ETHUSDT", "BTCUSDT")
    with engine.connect() as connection:
        pairs = {(p.symbol, p.interval): p.count for p in gaps.summaries(connection)}
    assert pairs == {("ETHUSDT", "5m"): 9100, ("BTCUSDT", "5m"): 3169}


def test_one_minute_rolls_up_to_five_minutes(engine: Engine) -> None:
    jobs.import_file(
        engine,
        path=shared_data_path("btcusdt-1m-2025-05-20_2025-08-18.csv"),
        symbol=None,
        interval=None,
    )
    truth = {row["open_time"]: row for row in _read_csv(shared_data_path(FIXTURES[0]))}
    with engine.connect() as connection:
        minutes = candle_reads.read_candles(
            connection, symbol="BTCUSDT", interval="1m", start=parse_iso_utc("2025-06-29T00:00Z")
        )
    rolled = list(roll_up(minutes, "5m"))
    # Every whole 5 minutes rolls up (over 14,000 with the shared file, 864 with its slice).
    assert len(rolled) == len(minutes) // 5 >= 864
    for candle in rolled:
        expected = truth[iso_utc(candle.open_time)]
        for column in ("open", "high", "low", "close", "volume"):
            assert getattr(candle, column) == Decimal(expected[column]), (column, candle.open_time)


def _binance_dump_line(open_time_us: int, close: str = "100.5") -> str:
    close_us = open_time_us + 300_000_000 - 1
    return f"{open_time_us},100.0,101.0,99.0,{close},3.5,{close_us},350.0,10,1.0,100.0,0\n"


def test_dump_zip_with_microseconds_loads(engine: Engine, tmp_path: Path) -> None:
    start_us = parse_iso_utc("2025-09-01T00:00:00Z") * 1000
    content = "".join(_binance_dump_line(start_us + i * 300_000_000) for i in range(12))
    path = tmp_path / "BTCUSDT-5m-2025-09-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-5m-2025-09-01.csv", content)
    report = jobs.import_file(engine, path=path, symbol=None, interval=None)
    assert (report.symbol, report.interval, report.source) == ("BTCUSDT", "5m", "archive")
    with engine.connect() as connection:
        candles = candle_reads.read_candles(connection, symbol="BTCUSDT", interval="5m")
    assert candles[0].open_time == start_us // 1000
    assert candles[0].close_time == start_us // 1000 + 299_999
    assert candles[-1].taker_buy_quote == Decimal("100.0")


def _assert_nothing_written(engine: Engine) -> None:
    with engine.connect() as connection:
        assert gaps.summaries(connection) == []


def test_truncated_zip_is_refused(engine: Engine, tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    start_us = parse_iso_utc("2025-09-01T00:00:00Z") * 1000
    with zipfile.ZipFile(good, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "x.csv", "".join(_binance_dump_line(start_us + i * 300_000_000) for i in range(500))
        )
    truncated = tmp_path / "BTCUSDT-5m-2025-09-01.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataFileError, match=r"BTCUSDT-5m-2025-09-01\.zip"):
        jobs.import_file(engine, path=truncated, symbol=None, interval=None)
    _assert_nothing_written(engine)


def test_bad_row_names_file_and_line_and_loads_nothing(engine: Engine, tmp_path: Path) -> None:
    source = shared_data_path(FIXTURES[0]).read_text().splitlines()
    lines = source[:300]
    lines[250] = lines[250].replace(",", ",abc", 1)
    path = tmp_path / "btcusdt-5m-2025-06-29_bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError) as caught:
        jobs.import_file(engine, path=path, symbol=None, interval=None)
    assert f"{path}:251" in str(caught.value)
    _assert_nothing_written(engine)
    with engine.connect() as connection:
        (run,) = runs.recent_runs(connection, name="import")
    assert run.status == runs.FAILED and "251" in run.details["error"]


def test_bad_row_in_a_later_chunk_rolls_back_earlier_chunks(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("candlecast.files.CHUNK_ROWS", 100)
    source = shared_data_path(FIXTURES[0]).read_text().splitlines()[:1000]
    source[900] = source[900].split(",")[0] + ",1,1,2,1,1"  # low above open and close
    path = tmp_path / "btcusdt-5m-2025-06-29_x.csv"
    path.write_text("\n".join(source) + "\n")
    with pytest.raises(DataFileError, match=r"btcusdt-5m-2025-06-29_x.csv:901: low is above"):
        jobs.import_file(engine, path=path, symbol=None, interval=None)
    _assert_nothing_written(engine)


def test_unknown_interval_is_refused() -> None:
    with pytest.raises(InvalidInterval, match="7m"):
        jobs.closed_window(0, "7m", 1)


def test_interval_in_file_name_must_match_flag(engine: Engine) -> None:
    with pytest.raises(DataFileError, match="file name says 5m"):
        jobs.import_file(engine, path=shared_data_path(FIXTURES[0]), symbol=None, interval="1m")
    _assert_nothing_written(engine)
