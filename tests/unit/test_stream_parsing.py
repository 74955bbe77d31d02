"""Kline stream message decoding and duplicate suppression (no network)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from candlecast.config import Settings
from candlecast.exchange.stream import KlineClosed, KlineStream, KlineUpdate

T0 = 1_751_155_200_000


def message(open_time: int, *, closed: bool, close: str = "107285.460") -> str:
    k = {"t": open_time, "T": open_time + 299_999, "s": "BTCUSDT", "i": "5m", "f": 1, "L": 9,
         "o": "107296.79", "c": close, "h": "107296.79", "l": "107285.45", "v": "4.55229",
         "n": 9, "x": closed, "q": "488432.1", "V": "1.0", "Q": "107290.0", "B": "0"}  # fmt: skip
    return json.dumps({"e": "kline", "E": open_time + 1000, "s": "BTCUSDT", "k": k})


def stream() -> KlineStream:
    return KlineStream(ws_base_url="ws://example.test/", symbol="btcusdt", interval="5m")


def test_url_is_lowercase_symbol_and_interval() -> None:
    assert stream().url == "ws://example.test/ws/btcusdt@kline_5m"


def test_from_settings_uses_the_configured_stream() -> None:
    settings = Settings(binance_ws_url="wss://data-stream.binance.vision/", symbol="ethusdt",
                        interval="1h")  # fmt: skip
    built = KlineStream.from_settings(settings, max_age_seconds=60)
    assert built.url == "wss://data-stream.binance.vision/ws/ethusdt@kline_1h"


def test_closed_and_update_events_keep_exact_values() -> None:
    s = stream()
    update = s._decode(message(T0, closed=False, close="107290.1"))
    assert isinstance(update, KlineUpdate) and update.candle.close == Decimal("107290.1")
    closed = s._decode(message(T0, closed=True))
    assert isinstance(closed, KlineClosed)
    assert str(closed.candle.close) == "107285.460"
    assert closed.candle.trades == 9 and closed.candle.close_time == T0 + 299_999
    assert s.state.last_closed_open_time == T0


def test_same_closed_candle_is_never_yielded_twice() -> None:
    s = stream()
    assert s._decode(message(T0, closed=True)) is not None
    assert s._decode(message(T0, closed=True)) is None
    assert s._decode(message(T0, closed=False)) is None  # a late update of a closed candle
    assert isinstance(s._decode(message(T0 + 300_000, closed=False)), KlineUpdate)


def test_resume_after_skips_already_stored_candles() -> None:
    s = stream()
    s.resume_after(T0)
    assert s._decode(message(T0, closed=True)) is None


def test_combined_envelope_and_other_messages() -> None:
    s = stream()
    wrapped = json.dumps(
        {"stream": "btcusdt@kline_5m", "data": json.loads(message(T0, closed=True))}
    )
    assert isinstance(s._decode(wrapped), KlineClosed)
    assert s._decode("not json") is None
    assert s._decode(json.dumps({"result": None, "id": 1})) is None


def test_server_shutdown_ends_the_connection() -> None:
    s = stream()
    with pytest.raises(Exception, match="server_shutdown"):
        s._decode(json.dumps({"e": "serverShutdown", "E": T0}))
