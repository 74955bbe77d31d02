"""Kline stream message decoding, duplicate suppression, pair routing and limits (no network)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.exchange.stream import (
    KlineClosed,
    KlineStream,
    KlineUpdate,
    PairResume,
    PairStream,
    Reconnected,
    TokenBucket,
    connect_limiter,
    stream_name,
)
from candlecast.exchange.stream_decode import Answer, classify
from candlecast.exchange.stream_events import pair_of_stream

T0 = 1_751_155_200_000


def message(open_time: int, *, closed: bool, close: str = "107285.460") -> str:
    k: dict[str, object] = dict(t=open_time, T=open_time + 299_999, s="BTCUSDT", i="5m", f=1, L=9)
    k.update(o="107296.79", c=close, h="107296.79", l="107285.45", v="4.55229", n=9, x=closed)
    k.update(q="488432.1", V="1.0", Q="107290.0", B="0")
    return json.dumps({"e": "kline", "E": open_time + 1000, "s": "BTCUSDT", "k": k})


def stream() -> KlineStream:
    return KlineStream(ws_base_url="ws://example.test/", symbol="btcusdt", interval="5m")


def test_url_is_lowercase_symbol_and_interval() -> None:
    assert stream().url == "ws://example.test/ws/btcusdt@kline_5m"


def test_from_settings_uses_the_configured_stream() -> None:
    base = "wss://data-stream.binance.vision/"
    settings = Settings(binance_ws_url=base, symbol="ethusdt", interval="1h")
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


# --- Many pairs ------------------------------------------------------------------------------

BTC, ETH = Pair("BTCUSDT", "5m"), Pair("ETHUSDT", "1h")


def combined(pair: Pair, open_time: int, *, closed: bool = True) -> str:
    payload = json.loads(message(open_time, closed=closed))
    return json.dumps({"stream": stream_name(pair), "data": payload})


def pairs_stream(*pairs: Pair) -> PairStream:
    return PairStream(ws_base_url="ws://example.test/", pairs=pairs or (BTC, ETH))


def last_close(s: PairStream, pair: Pair) -> int | None:
    state = s.state.pair(pair)
    assert state is not None
    return state.last_closed_open_time


def test_stream_names_are_lower_case_symbol_at_kline_interval() -> None:
    assert stream_name(ETH) == "ethusdt@kline_1h" and pair_of_stream("ethusdt@kline_1h") == ETH
    assert pair_of_stream("btcusdt@trade") is None and pair_of_stream("b@kline_7x") is None


def test_combined_url_names_every_pair_and_from_settings_uses_the_configured_pairs() -> None:
    assert pairs_stream().state.url == (
        "ws://example.test/stream?streams=btcusdt@kline_5m/ethusdt@kline_1h"
    )
    settings = Settings(binance_ws_url="wss://x.test", pairs="SOLUSDT:1h,BTCUSDT:5m")
    assert PairStream.from_settings(settings).pairs == (Pair("SOLUSDT", "1h"), BTC)
    assert PairStream.from_settings(settings, pairs=[ETH]).pairs == (ETH,)


def test_events_are_routed_by_the_envelope_and_carry_their_pair() -> None:
    s = pairs_stream()
    event = s._decode(combined(ETH, T0))
    # The envelope names the stream; the payload's own "s" (BTCUSDT here) does not decide.
    assert isinstance(event, KlineClosed) and event.pair == ETH and event.candle.interval == "1h"
    assert isinstance(s._decode(combined(BTC, T0)), KlineClosed)  # deduped per pair, not across
    assert s._decode(combined(ETH, T0)) is None
    assert s._decode(combined(Pair("SOLUSDT", "5m"), T0)) is None  # not carried
    assert last_close(s, ETH) == T0


def test_a_removed_pair_yields_nothing_more_and_resume_is_per_pair() -> None:
    s = pairs_stream()
    s.resume_after(BTC, T0)
    assert s._decode(combined(BTC, T0)) is None
    assert isinstance(s._decode(combined(ETH, T0)), KlineClosed)
    s.remove_pairs([ETH])
    assert s._decode(combined(ETH, T0 + 300_000)) is None and s.pairs == (BTC,)
    s.add_pairs([ETH, BTC])  # a re-added pair starts afresh; a carried one is left alone
    assert list(s.pairs) == [BTC, ETH] and last_close(s, BTC) == T0 and last_close(s, ETH) is None
    sol, xrp = Pair("SOLUSDT", "5m"), Pair("XRPUSDT", "5m")
    s.resume_after(sol, T0)  # before the pair is added, as a caller resuming then adding does
    s.add_pairs([sol, xrp], resume_after={xrp: T0 + 300_000})
    assert last_close(s, sol) == T0 and s._decode(combined(sol, T0)) is None
    assert last_close(s, xrp) == T0 + 300_000 and s._decode(combined(xrp, T0)) is None


def test_pairs_fill_connections_up_to_the_limit() -> None:
    many = [Pair(f"C{i}USDT", "5m") for i in range(7)]
    s = PairStream(ws_base_url="ws://example.test/", pairs=many, max_streams_per_connection=3)
    assert [c.streams for c in s.state.connections] == [3, 3, 1]
    assert [p.connection for p in s.state.pairs] == [0, 0, 0, 1, 1, 1, 2]
    with pytest.raises(ValueError, match=r"1\.\.1024"):
        PairStream(ws_base_url="ws://x/", max_streams_per_connection=1025)
    with pytest.raises(ValueError, match="Binance"):
        PairStream(ws_base_url="ws://x/", messages_per_second=6)


def test_answers_and_errors_are_classified_and_reported() -> None:
    assert classify(json.dumps({"result": None, "id": 3})) == Answer(id=3, result=None, error=None)
    flat = classify(json.dumps({"code": 2, "msg": "Invalid request: too many parameters", "id": 4}))
    assert isinstance(flat, Answer) and flat.error == "code 2: Invalid request: too many parameters"
    nested = classify(json.dumps({"error": {"code": 2, "msg": "unknown stream"}, "id": 5}))
    assert isinstance(nested, Answer) and nested.error == "code 2: unknown stream"
    s = pairs_stream()
    assert s._decode(json.dumps({"code": 3, "msg": "Invalid JSON"})) is None
    assert s.state.last_error is not None and "Invalid JSON" in s.state.last_error
    assert s._decode(json.dumps([1, 2])) is None and s._decode(json.dumps({"e": "trade"})) is None


def test_reconnected_gives_the_oldest_known_close_to_fill_from() -> None:
    both = (PairResume(BTC, T0 + 300_000), PairResume(ETH, T0))
    event = Reconnected(reason="dropped", down_seconds=1.0, attempts=1, resumes=both)
    assert event.pairs == (BTC, ETH) and event.last_closed_open_time == T0
    unknown = Reconnected("idle", 1.0, 1, (PairResume(BTC, T0), PairResume(ETH, None)))
    assert unknown.last_closed_open_time is None


async def test_the_token_bucket_waits_instead_of_failing() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=1.0, capacity=2.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        await bucket.acquire()
    assert slept == [1.0, 1.0] and now[0] == 2.0
    assert connect_limiter().capacity == 300 and connect_limiter().rate == 1.0
