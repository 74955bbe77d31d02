"""Property tests (Hypothesis) for the parsers and the interval arithmetic.

- The REST kline parser and the WebSocket decoder keep every decimal string exactly, and turn
  malformed input into their documented outcome (ValueError for REST, which the client retries
  and then reports as ExchangeUnavailable; a skipped message for the stream), never a crash.
- The dump and header CSV readers round-trip candles exactly (µs or ms timestamps, ISO or epoch
  times) and refuse a corrupted file with DataFileError naming the line.
- Interval arithmetic: alignment, close_time = open + interval - 1, next and previous opens.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from candlecast.domain import (
    INTERVAL_MS,
    CandlecastError,
    DataFileError,
    InvalidInterval,
    close_time_of,
    floor_open_time,
    format_decimal,
    interval_ms,
    iso_utc,
    parse_iso_utc,
    validate_interval,
)
from candlecast.exchange.rest import parse_kline, parse_klines
from candlecast.exchange.stream import KlineClosed, KlineStream, KlineUpdate
from candlecast.files import describe, read_chunks

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Binance's first candles (2017) to well past today, in ms.
FIRST_MS, LAST_MS = 1_500_000_000_000, 4_000_000_000_000
# Intervals whose open times are multiples of their length since the epoch (1w opens on
# Mondays and the epoch was a Thursday; floor_open_time is documented for intervals up to 1d).
ALIGNED = [name for name, step in INTERVAL_MS.items() if step <= 86_400_000]


@st.composite
def decimal_text(draw: st.DrawFn, *, low: int = 0, high: int = 10**7) -> str:
    """A non-negative decimal string as Binance writes one: digits, a point, up to 8 places
    (trailing zeros kept)."""
    whole = draw(st.integers(low, high))
    places = draw(st.integers(0, 8))
    if places == 0:
        return str(whole)
    fraction = draw(st.integers(0, 10**places - 1))
    return f"{whole}.{fraction:0{places}d}"


@st.composite
def candle_fields(draw: st.DrawFn, interval: str = "5m") -> dict[str, Any]:
    """One consistent candle: aligned open time, high >= open/close >= low, exact strings."""
    step = interval_ms(interval)
    open_time = draw(st.integers(FIRST_MS // step, LAST_MS // step)) * step
    prices = sorted(Decimal(draw(decimal_text(low=1))) for _ in range(4))
    texts = [format_decimal(price) for price in prices]
    low, a, b, high = texts
    open_, close = (a, b) if draw(st.booleans()) else (b, a)
    return {
        "open_time": open_time,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": draw(decimal_text()),
        "close_time": open_time + step - 1,
        "quote_volume": draw(decimal_text()),
        "trades": draw(st.integers(0, 10**7)),
        "taker_buy_base": draw(decimal_text()),
        "taker_buy_quote": draw(decimal_text()),
    }


VALUES = ("open", "high", "low", "close", "volume")
OPTIONAL = ("quote_volume", "taker_buy_base", "taker_buy_quote")


def _rest_row(fields: dict[str, Any]) -> list[Any]:
    return [
        fields["open_time"],
        *(fields[n] for n in VALUES),
        fields["close_time"],
        fields["quote_volume"],
        fields["trades"],
        fields["taker_buy_base"],
        fields["taker_buy_quote"],
        "0",
    ]


# --- The REST kline parser -------------------------------------------------------------------


@PROPERTY
@given(st.lists(candle_fields(), min_size=1, max_size=5))
def test_rest_klines_keep_every_decimal_string_exactly(rows: list[dict[str, Any]]) -> None:
    # The client decodes JSON with parse_float=Decimal, so numbers arrive as Decimals too.
    payload = json.loads(json.dumps([_rest_row(r) for r in rows]), parse_float=Decimal)
    candles = parse_klines(payload, symbol="BTCUSDT", interval="5m")
    for fields, candle in zip(rows, candles, strict=True):
        assert (candle.open_time, candle.close_time) == (fields["open_time"], fields["close_time"])
        for name in (*VALUES, *OPTIONAL):
            assert format_decimal(getattr(candle, name)) == fields[name]
        assert candle.trades == fields["trades"]


JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@PROPERTY
@given(JSON_JUNK)
def test_rest_parser_refuses_anything_else_with_value_error(payload: Any) -> None:
    """Whatever JSON arrives, parsing ends in candles or ValueError (which the client retries,
    then reports as ExchangeUnavailable): never TypeError, KeyError or IndexError."""
    with contextlib.suppress(ValueError):
        parse_klines(payload, symbol="BTCUSDT", interval="5m")


@PROPERTY
@given(candle_fields(), st.integers(0, 10), st.sampled_from(["", "abc", "1,5", "--1", None, []]))
def test_a_malformed_field_is_a_value_error(fields: dict[str, Any], index: int, bad: Any) -> None:
    row = _rest_row(fields)
    assume(index != 8 or bad is not None)  # trades may not be None either: still an error
    row[index] = bad
    with pytest.raises(ValueError):
        parse_kline(row, symbol="BTCUSDT", interval="5m")


INSANE = st.sampled_from(["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "-1", "-0.00000001"])


@PROPERTY
@given(candle_fields(), st.integers(1, 5), INSANE)
def test_a_nan_infinite_or_negative_price_is_refused(
    fields: dict[str, Any], index: int, bad: str
) -> None:
    """Decimal accepts these strings; a kline carrying one is malformed, never stored."""
    row = _rest_row(fields)
    row[index] = bad
    with pytest.raises(ValueError, match="NaN or negative"):
        parse_kline(row, symbol="BTCUSDT", interval="5m")
    payload = _event(fields, True)
    payload["k"]["ohlcv"[index - 1]] = bad
    assert _stream()._decode(json.dumps(payload)) is None


# --- The WebSocket decoder -------------------------------------------------------------------


def _stream() -> KlineStream:
    return KlineStream(ws_base_url="ws://127.0.0.1:1/", symbol="BTCUSDT", interval="5m")


def _event(fields: dict[str, Any], closed: bool) -> dict[str, Any]:
    k = {
        "t": fields["open_time"],
        "T": fields["close_time"],
        "s": "BTCUSDT",
        "i": "5m",
        "o": fields["open"],
        "h": fields["high"],
        "l": fields["low"],
        "c": fields["close"],
        "v": fields["volume"],
        "n": fields["trades"],
        "x": closed,
        "q": fields["quote_volume"],
        "V": fields["taker_buy_base"],
        "Q": fields["taker_buy_quote"],
        "B": "0",
    }
    return {"e": "kline", "E": fields["close_time"] + 1, "s": "BTCUSDT", "k": k}


@PROPERTY
@given(candle_fields(), st.booleans(), st.booleans())
def test_stream_events_keep_every_decimal_string_exactly(
    fields: dict[str, Any], closed: bool, combined: bool
) -> None:
    payload = _event(fields, closed)
    if combined:
        payload = {"stream": "btcusdt@kline_5m", "data": payload}
    event = _stream()._decode(json.dumps(payload))
    assert isinstance(event, KlineClosed if closed else KlineUpdate)
    candle = event.candle
    assert (candle.open_time, candle.close_time) == (fields["open_time"], fields["close_time"])
    for name in (*VALUES, *OPTIONAL):
        assert format_decimal(getattr(candle, name)) == fields[name]


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64),
        JSON_JUNK.map(json.dumps),
        st.builds(
            lambda f, key, value: json.dumps(
                {**_event(f, True), "k": {**_event(f, True)["k"], key: value}}
            ),
            candle_fields(),
            st.sampled_from(["t", "T", "o", "h", "l", "c", "v", "n", "q", "V", "Q", "x"]),
            JSON_JUNK,
        ),
    )
)
def test_stream_decoder_skips_malformed_messages_and_never_raises(raw: str | bytes) -> None:
    event = _stream()._decode(raw)
    assert event is None or isinstance(event, KlineClosed | KlineUpdate)


# --- The dump and header CSV readers ---------------------------------------------------------


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


# --- Interval arithmetic and times -----------------------------------------------------------


@PROPERTY
@given(st.sampled_from(ALIGNED), st.integers(FIRST_MS, LAST_MS))
def test_open_times_align_and_close_times_follow(interval: str, moment: int) -> None:
    step = interval_ms(interval)
    open_time = floor_open_time(moment, interval)
    assert open_time % step == 0 and open_time <= moment < open_time + step
    close_time = close_time_of(open_time, interval)
    assert close_time == open_time + step - 1
    assert floor_open_time(close_time, interval) == open_time
    # The next candle opens 1 ms after this one closes; the previous closed 1 ms before.
    assert floor_open_time(close_time + 1, interval) == open_time + step
    assert close_time_of(open_time - step, interval) == open_time - 1
    assert floor_open_time(open_time, interval) == open_time


@PROPERTY
@given(st.sampled_from(sorted(INTERVAL_MS)), st.integers(FIRST_MS // 1000, LAST_MS // 1000))
def test_every_interval_has_a_fixed_length_and_closes_one_ms_early(
    interval: str, seconds: int
) -> None:
    open_time = seconds * 1000
    assert validate_interval(interval) == interval
    assert close_time_of(open_time, interval) - open_time + 1 == INTERVAL_MS[interval]


@PROPERTY
@given(st.text(max_size=6).filter(lambda text: text not in INTERVAL_MS))
def test_unknown_intervals_month_included_are_refused_by_name(interval: str) -> None:
    """1M (a calendar month) has no fixed length, so it is refused like any unknown one."""
    with pytest.raises(InvalidInterval, match="unknown interval"):
        interval_ms(interval)
    with pytest.raises(InvalidInterval):
        validate_interval("1M")


@PROPERTY
@given(st.integers(0, LAST_MS))
def test_iso_times_round_trip_to_the_millisecond(moment: int) -> None:
    text = iso_utc(moment)
    assert text.endswith("Z") and parse_iso_utc(text) == moment
    assert parse_iso_utc(str(moment)) == moment if moment >= 10**8 else True
