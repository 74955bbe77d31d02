"""Property tests (Hypothesis) for the candle file readers: the dump and header CSV readers
round-trip candles exactly (µs or ms timestamps, ISO or epoch times) and refuse a corrupted file
with DataFileError naming the line."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from candlecast.domain import CandlecastError, DataFileError, iso_utc
from candlecast.files import describe, read_chunks
from tests.unit.strategies import FILES, VALUES, candle_fields


def _read(text: str, name: str) -> list[tuple[Any, ...]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8")
        kind = describe(path, symbol=None, interval=None)
        return [row for chunk in read_chunks(kind, chunk_rows=7) for row in chunk]


def _series(first: dict[str, Any], count: int, step: int) -> list[dict[str, Any]]:
    return [
        {
            **first,
            "open_time": first["open_time"] + i * step,
            "close_time": first["close_time"] + i * step,
        }
        for i in range(count)
    ]


def _expected(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            r["open_time"],
            *(r[n] for n in VALUES),
            r["close_time"],
            r["quote_volume"],
            r["trades"],
            r["taker_buy_base"],
            r["taker_buy_quote"],
        )
        for r in rows
    ]


@FILES
@given(candle_fields(), st.integers(1, 20), st.booleans())
def test_dump_csv_round_trips_with_ms_or_us_timestamps(
    first: dict[str, Any], count: int, microseconds: bool
) -> None:
    rows = _series(first, count, 300_000)
    scale = 1000 if microseconds else 1
    lines = [
        ",".join(
            str(v)
            for v in (
                r["open_time"] * scale,
                *(r[n] for n in VALUES),
                r["close_time"] * scale + (999 if microseconds else 0),
                r["quote_volume"],
                r["trades"],
                r["taker_buy_base"],
                r["taker_buy_quote"],
                "0",
            )
        )
        for r in rows
    ]
    assert _read("\n".join(lines) + "\n", "BTCUSDT-5m-2025-09.csv") == _expected(rows)


@FILES
@given(candle_fields(), st.integers(1, 20), st.booleans(), st.booleans())
def test_header_csv_round_trips_with_iso_or_epoch_times(
    first: dict[str, Any], count: int, iso: bool, crlf: bool
) -> None:
    rows = _series(first, count, 300_000)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    names = [
        "open_time",
        *VALUES,
        "close_time",
        "quote_volume",
        "trades",
        "taker_buy_base",
        "taker_buy_quote",
    ]
    writer.writerow(names)
    for r in rows:
        times = {n: iso_utc(r[n]) if iso else r[n] for n in ("open_time", "close_time")}
        writer.writerow([{**r, **times}[n] for n in names])
    assert _read(buffer.getvalue(), "BTCUSDT-5m-2025-09-export.csv") == _expected(rows)


CORRUPTIONS = st.sampled_from(
    [
        ("open", "abc"),
        ("high", "-1"),
        ("low", "NaN"),
        ("close", "inf"),
        ("volume", ""),
        ("open_time", "12:00"),
        ("open_time", "+1"),
        ("trades", "1.5"),
        ("quote_volume", "x1"),
    ]
)


@FILES
@given(candle_fields(), st.integers(2, 12), st.data(), CORRUPTIONS, st.booleans())
def test_a_corrupted_line_is_refused_naming_it(
    first: dict[str, Any],
    count: int,
    data: st.DataObject,
    corruption: tuple[str, str],
    header: bool,
) -> None:
    rows = _series(first, count, 300_000)
    broken = data.draw(st.integers(0, count - 1))
    name, value = corruption
    rows[broken] = {**rows[broken], name: value}
    names = [
        "open_time",
        *VALUES,
        "close_time",
        "quote_volume",
        "trades",
        "taker_buy_base",
        "taker_buy_quote",
    ]
    lines = [",".join(str(r[n]) for n in names) + ("" if header else ",0") for r in rows]
    text = "\n".join(([",".join(names)] if header else []) + lines) + "\n"
    with pytest.raises(DataFileError) as refused:
        _read(text, "BTCUSDT-5m-2025-09.csv")
    # Header CSVs count the header as line 1; a dump's first candle is line 1.
    expected_line = broken + (2 if header else 1)
    assert refused.value.line in (None, expected_line), (refused.value, expected_line)


@FILES
@given(st.binary(min_size=1, max_size=200))
def test_any_bytes_are_read_or_refused_with_data_file_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "BTCUSDT-5m-2025-09.csv"
        path.write_bytes(raw)
        with contextlib.suppress(CandlecastError):
            kind = describe(path, symbol=None, interval=None)
            for _chunk in read_chunks(kind):
                pass
