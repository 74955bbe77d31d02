"""Property tests (Hypothesis) for the parsers and the interval arithmetic.

- The REST kline parser and the WebSocket decoder keep every decimal string exactly, and turn
  malformed input into their documented outcome (ValueError for REST, which the client retries
  and then reports as ExchangeUnavailable; a skipped message for the stream), never a crash.
- Interval arithmetic: alignment, close_time = open + interval - 1, next and previous opens.

The file readers' properties are in test_file_properties.
"""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from candlecast.domain import (
    INTERVAL_MS,
    InvalidInterval,
    close_time_of,
    floor_open_time,
    format_decimal,
    interval_ms,
    iso_utc,
    parse_iso_utc,
    validate_interval,
)
from candlecast.exchange.rest_responses import parse_kline, parse_klines
from candlecast.exchange.stream import KlineClosed, KlineStream, KlineUpdate
from tests.unit.strategies import (
    FIRST_MS,
    LAST_MS,
    OPTIONAL,
    PROPERTY,
    VALUES,
    candle_fields,
)

# Intervals whose open times are multiples of their length since the epoch (1w opens on
# Mondays and the epoch was a Thursday; floor_open_time is documented for intervals up to 1d).
ALIGNED = [name for name, step in INTERVAL_MS.items() if step <= 86_400_000]


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
