"""REST client parsing and error mapping, against httpx.MockTransport (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from candlecast.config import Settings
from candlecast.domain import (
    Candle,
    ExchangeBlocked,
    ExchangeRejected,
    ExchangeUnavailable,
    InvalidInterval,
    InvalidSymbol,
    IPBanned,
    RateLimited,
    RestrictedLocation,
    format_decimal,
)
from candlecast.exchange.rest import BinanceRest
from candlecast.exchange.rest_responses import parse_kline

STEP = 300_000
T0 = 1_751_155_200_000  # 2025-06-29T00:00:00Z
ROW = [
    T0,
    "97592.0",
    "97814.09",
    "97404.01",
    "97516.00",
    "131.93067000",
    T0 + STEP - 1,
    "12874688.1423799",
    14274,
    "61.42006",
    "5993533.0683445",
    "0",
]


class FakeTime:
    """A wall clock that only moves when the client sleeps."""

    def __init__(self, start: float = 1_751_155_210.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, clock: FakeTime | None = None, **kw) -> BinanceRest:
    clock = clock or FakeTime()
    options = {"max_retries": 3, "backoff_base": 0.1, "backoff_max": 1.0, **kw}
    return BinanceRest(
        base_url="https://example.test",
        sleep=clock.sleep,
        wall_clock=clock.time,
        transport=httpx.MockTransport(handler),
        **options,
    )


def test_parse_kline_keeps_exchange_digits() -> None:
    candle = parse_kline(ROW, symbol="BTCUSDT", interval="5m")
    assert candle.open_time == T0 and candle.close_time == T0 + STEP - 1
    assert [format_decimal(v) for v in (candle.open, candle.close, candle.volume)] == [
        "97592.0",
        "97516.00",
        "131.93067000",
    ]
    assert candle.quote_volume == Decimal("12874688.1423799") and candle.trades == 14274


def test_numbers_sent_as_json_floats_stay_exact() -> None:
    body = (
        "[[1751155200000, 0.1, 0.30000000000000004, 0.1, 0.2, 1e-8, 1751155499999, 0, 0, 0, 0, 0]]"
    )
    client = make_client(lambda r: httpx.Response(200, text=body))
    (candle,) = client.klines("BTCUSDT", "5m")
    assert format_decimal(candle.high) == "0.30000000000000004"
    assert candle.volume == Decimal("1e-8")


def test_klines_sends_binance_parameters() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[ROW])

    client = make_client(handler)
    client.klines("BTCUSDT", "5m", start_time=T0, end_time=T0 + STEP, limit=1000)
    params = dict(seen[0].url.params)
    assert seen[0].url.path == "/api/v3/klines"
    expected = {"symbol": "BTCUSDT", "interval": "5m", "limit": "1000"}
    assert params == {**expected, "startTime": str(T0), "endTime": str(T0 + STEP)}


def synthetic_exchange(server_time: int) -> Handler:
    """Serves aligned synthetic 5m candles from T0, honouring startTime/endTime/limit."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v3/time":
            return httpx.Response(200, json={"serverTime": server_time})
        q = request.url.params
        start = max(T0, int(q.get("startTime", T0)))
        start += -start % STEP
        end = min(int(q.get("endTime", server_time)), server_time)
        opens = range(start, end + 1, STEP)[: int(q.get("limit", 500))]
        rows = [
            [t, "1.0", "2.0", "0.5", "1.5", "3", t + STEP - 1, "0", 0, "0", "0", "0"] for t in opens
        ]
        return httpx.Response(200, json=rows, headers={"X-MBX-USED-WEIGHT-1M": "2"})

    return handler


def test_closed_klines_pages_and_drops_the_open_candle() -> None:
    now = T0 + 2500 * STEP + 1234  # mid-candle: candle 2500 is still open
    client = make_client(synthetic_exchange(now))
    pages: list[list[Candle]] = []
    candles = client.closed_klines("BTCUSDT", "5m", start_ms=T0 + 7, on_page=pages.append)
    opens = [c.open_time for c in candles]
    assert opens == list(range(T0 + STEP, T0 + 2500 * STEP, STEP))
    assert [len(p) for p in pages] == [1000, 1000, 499]
    assert all(c.close_time < now for c in candles)
    assert client.stats.calls == 4  # server time + three pages


def test_429_honours_retry_after_then_succeeds() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "3"})] * 2)

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json={"serverTime": 5}))

    clock = FakeTime()
    client = make_client(handler, clock)
    assert client.server_time() == 5
    assert clock.sleeps == [3.0, 3.0]
    assert client.stats.retries == 2


def test_429_exhausted_raises_rate_limited() -> None:
    client = make_client(lambda r: httpx.Response(429, headers={"Retry-After": "2"}))
    with pytest.raises(RateLimited) as caught:
        client.server_time()
    assert caught.value.retry_after == 2.0
    assert client.stats.calls == 4


def test_418_raises_ip_banned_with_until_and_no_retry() -> None:
    clock = FakeTime()
    client = make_client(lambda r: httpx.Response(418, headers={"Retry-After": "120"}), clock)
    with pytest.raises(IPBanned) as caught:
        client.server_time()
    assert caught.value.until_ms == int((clock.now + 120) * 1000)
    assert client.stats.calls == 1


def test_451_names_the_location_problem_and_other_urls() -> None:
    client = make_client(lambda r: httpx.Response(451, json={"code": 0, "msg": "restricted"}))
    with pytest.raises(RestrictedLocation) as caught:
        client.ping()
    text = str(caught.value)
    assert "CANDLECAST_BINANCE_URL" in text and "data-api.binance.vision" in text
    assert "Binance.US" in text


def test_403_is_exchange_blocked() -> None:
    client = make_client(lambda r: httpx.Response(403, text="<html>"))
    with pytest.raises(ExchangeBlocked):
        client.ping()


@pytest.mark.parametrize(
    ("code", "error"), [(-1121, InvalidSymbol), (-1120, InvalidInterval), (-1100, ExchangeRejected)]
)
def test_4xx_codes_map_to_errors(code: int, error: type[Exception]) -> None:
    client = make_client(lambda r: httpx.Response(400, json={"code": code, "msg": "nope"}))
    with pytest.raises(error):
        client.klines("BTCUSDT", "5m")
    assert client.stats.calls == 1


def test_5xx_backs_off_with_bounded_jitter_then_gives_up() -> None:
    clock = FakeTime()
    client = make_client(lambda r: httpx.Response(503, text="busy"), clock, max_retries=5)
    with pytest.raises(ExchangeUnavailable, match="HTTP 503"):
        client.ping()
    caps = [0.1, 0.2, 0.4, 0.8, 1.0]
    assert len(clock.sleeps) == 5
    assert all(cap / 2 <= s <= cap for s, cap in zip(clock.sleeps, caps, strict=True))


def test_malformed_json_and_dropped_connections_are_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        if calls["n"] == 2:
            return httpx.Response(200, text='{"serverTime": 17')
        return httpx.Response(200, json={"serverTime": 17})

    client = make_client(handler)
    assert client.server_time() == 17
    assert client.stats.retries == 2


def test_governor_waits_for_next_minute_before_budget_is_spent() -> None:
    clock = FakeTime(start=1_751_155_230.0)  # 30 s into a minute
    headers = {"X-MBX-USED-WEIGHT-1M": "9"}
    client = make_client(
        lambda r: httpx.Response(200, json={}, headers=headers), clock, weight_budget_per_minute=10
    )
    client.ping()
    assert clock.sleeps == []
    client.ping()  # 9 used + 1 would reach the budget exactly: allowed
    client.ping()
    assert len(clock.sleeps) == 1 and 30.0 <= clock.sleeps[0] <= 30.1
    assert client.stats.weight_used == 9


def test_check_symbol_reads_exchange_info() -> None:
    info = {
        "symbols": [
            {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"}
        ]
    }
    client = make_client(lambda r: httpx.Response(200, text=json.dumps(info)))
    assert client.check_symbol("btcusdt").status == "TRADING"


def test_from_settings_takes_url_timeout_retries_and_budget() -> None:
    settings = Settings(
        binance_url="https://api1.binance.com/", http_max_retries=2, weight_budget_per_minute=100
    )
    with BinanceRest.from_settings(settings, max_workers=2) as client:
        assert client.base_url == "https://api1.binance.com"
        assert client._max_retries == 2 and client.governor._budget == 100
