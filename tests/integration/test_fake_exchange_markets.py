"""The fake exchange serving many markets: REST per market, combined streams, live
(un)subscribing, Binance's WebSocket limits, and the synthetic markets made from real BTC data."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from candlecast.domain import iso_utc, parse_iso_utc
from tests.fake_exchange import MarketSpec, WsLimits, load_market, synthetic_markets
from tests.fake_exchange.server import FakeExchange
from tests.fake_exchange.synthetic import ShiftedRows
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.shared_data

ETH_CSV = "ethusdt-5m-2025-08-19_2025-09-20-full.csv"
HOURLY_CSV = "btcusdt-1h-2024-07-19_2026-07-19-full.csv"
NOW = "2025-09-10T00:04:00Z"  # inside both the BTC and the ETH file; a minute before a close
STEP = 300_000
BTC, SYN = "btcusdt@kline_5m", "syn001usdt@kline_5m"


def reference_scale(text: str, factor: Decimal) -> str:
    """The documented rule in plain Decimal: keep the decimals, plus the factor's magnitude."""
    exponent = Decimal(text).as_tuple().exponent
    assert isinstance(exponent, int)
    decimals = max(0, -exponent) + max(0, -factor.adjusted())
    quantum = Decimal(1).scaleb(-decimals)
    return format((Decimal(text) * factor).quantize(quantum, rounding=ROUND_HALF_EVEN), "f")


def many_markets(fake_exchange, count: int = 3, **options: Any) -> FakeExchange:
    syn = synthetic_markets(shared_data_path(MAIN_CSV), count)
    eth = MarketSpec(shared_data_path(ETH_CSV))
    fake: FakeExchange = fake_exchange(start=NOW, markets=[eth, *syn], **options)
    return fake


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 5.0))
    assert isinstance(message, dict)
    return message


Json = dict[str, Any]


async def request(ws: ClientConnection, payload: Json) -> tuple[Json, list[Json]]:
    """Sends a request; returns its answer and the events that arrived before it."""
    await ws.send(json.dumps(payload))
    events: list[dict[str, Any]] = []
    while True:
        message = await receive(ws)
        if "result" in message or "error" in message:
            return message, events
        events.append(message)


async def closes_per_stream(
    ws: ClientConnection, streams: set[str], n: int
) -> dict[str, list[Json]]:
    """Combined-stream closes until every stream had n of them."""
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in streams}
    async with asyncio.timeout(15):
        while min(len(v) for v in found.values()) < n:
            message = await receive(ws)
            assert set(message) == {"stream", "data"}
            event = message["data"]
            assert event["e"] == "kline" and message["stream"] == (
                f"{event['s'].lower()}@kline_{event['k']['i']}"
            )
            if event["k"]["x"]:
                found[message["stream"]].append(event)
    return found


def test_rest_serves_every_market(fake_exchange) -> None:
    fake = many_markets(fake_exchange, speed=0)
    now = parse_iso_utc(NOW)
    syn2 = fake.markets[("SYN002USDT", "5m")]
    with httpx.Client(base_url=fake.base_url) as http:
        eth = http.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "5m"}).json()
        with shared_data_path(ETH_CSV).open(newline="") as handle:
            eth_csv = {row["open_time"]: row for row in csv.DictReader(handle)}
        assert len(eth) == 500 and eth[-1][0] == now - 240_000  # the live candle
        for row in eth[-5:-1]:
            want = eth_csv[iso_utc(row[0])]
            assert row[1:6] == [want[k] for k in ("open", "high", "low", "close", "volume")]
        params: dict[str, str | int] = {"symbol": "SYN002USDT", "interval": "5m", "limit": 3}
        syn = http.get("/api/v3/klines", params={**params, "endTime": now - STEP}).json()
        index = syn2.index_at_or_after(syn[0][0])
        assert [r[4] for r in syn] == [syn2.rows[index + i].close for i in range(3)]
        assert http.get("/api/v3/klines", params={**params, "interval": "1h"}).json() == {
            "code": -1120,
            "msg": "Invalid interval.",
        }
        assert (
            http.get("/api/v3/klines", params={**params, "symbol": "NOPE"}).json()["code"] == -1121
        )
        info = http.get("/api/v3/exchangeInfo")
        symbols = [s["symbol"] for s in info.json()["symbols"]]
        assert symbols == ["BTCUSDT", "ETHUSDT", "SYN001USDT", "SYN002USDT", "SYN003USDT"]
        assert {s["status"] for s in info.json()["symbols"]} == {"TRADING"}
        one = http.get("/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}).json()["symbols"]
        assert [(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in one] == [
            ("ETHUSDT", "ETH", "USDT")
        ]
        both = http.get("/api/v3/exchangeInfo", params={"symbols": '["SYN003USDT","BTCUSDT"]'})
        assert [s["symbol"] for s in both.json()["symbols"]] == ["SYN003USDT", "BTCUSDT"]
        unknown = http.get("/api/v3/exchangeInfo", params={"symbols": '["BTCUSDT","NOPE"]'})
        assert unknown.status_code == 400 and unknown.json() == {
            "code": -1121,
            "msg": "Invalid symbol.",
        }
        # One IP budget: klines 2 each, exchangeInfo 20 each, all counted together.
        assert int(unknown.headers["X-MBX-USED-WEIGHT-1M"]) == 2 * 4 + 20 * 4
        assert http.get("/api/v3/time").json() == {"serverTime": now}
        fake.add_market(MarketSpec(shared_data_path(HOURLY_CSV)))  # while running
        hourly: dict[str, str | int] = {"symbol": "BTCUSDT", "interval": "1h", "limit": 2}
        assert http.get("/api/v3/klines", params=hourly).json()[-1][0] == now - 240_000
        daily = "/data/spot/daily/klines/{0}/5m/{0}-5m-2025-09-01.zip"
        assert http.get(daily.format("SYN001USDT")).status_code == 200
        assert http.get(daily.format("ETHUSDT")).status_code == 200
        assert http.get(daily.format("NOPEUSDT")).status_code == 404


async def test_combined_stream_wraps_closes_of_two_markets(fake_exchange) -> None:
    fake = many_markets(fake_exchange, speed=300, ws_update_ms=50)
    async with connect(fake.stream_url(BTC, SYN)) as ws:
        found = await closes_per_stream(ws, {BTC, SYN}, 2)
        assert fake.ws_connections()[0].streams == (BTC, SYN)
    first = parse_iso_utc(NOW) - 240_000
    for name, symbol in ((BTC, "BTCUSDT"), (SYN, "SYN001USDT")):
        market = fake.markets[(symbol, "5m")]
        events = found[name][:2]
        assert [e["k"]["t"] for e in events] == [first, first + STEP]
        for e in events:
            row = market.rows[market.index_at_or_after(e["k"]["t"])]
            assert e["s"] == symbol
            assert [e["k"][k] for k in "ohlcv"] == [
                row.open,
                row.high,
                row.low,
                row.close,
                row.volume,
            ]
    assert fake.stats.ws_stream_messages[BTC] >= 2 and fake.stats.ws_stream_messages[SYN] >= 2


async def test_faults_apply_to_every_combined_stream(fake_exchange) -> None:
    fake = many_markets(fake_exchange, speed=300, ws_update_ms=50)
    fake.set_faults(ws_duplicate_closes=True)
    async with connect(fake.stream_url(BTC, SYN)) as ws:
        found = await closes_per_stream(ws, {BTC, SYN}, 4)
        for name in (BTC, SYN):
            opens = [e["k"]["t"] for e in found[name][:4]]
            assert opens[0] == opens[1] and opens[2] == opens[3] and opens[1] != opens[2]
        assert fake.open_sockets() == 1
        await asyncio.to_thread(fake.drop_websockets)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert fake.fault_counters()["ws_duplicate"] >= 4


@pytest.mark.parametrize("path", ["/ws/" + BTC, "/stream?streams=" + BTC])
async def test_subscribe_adds_a_market_and_unsubscribe_removes_it(fake_exchange, path) -> None:
    fake = many_markets(fake_exchange, speed=300, ws_update_ms=50)
    combined = path.startswith("/stream")

    def symbol_of(event: dict[str, Any]) -> str:
        return str((event["data"] if combined else event)["s"])

    async with connect(fake.ws_url + path) as ws:
        answer, _ = await request(ws, {"method": "SUBSCRIBE", "params": [SYN], "id": 1})
        assert answer == {"result": None, "id": 1}
        seen: set[str] = set()
        async with asyncio.timeout(5):
            while "SYN001USDT" not in seen:
                seen.add(symbol_of(await receive(ws)))
        answer, _ = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2})
        assert answer == {"result": [BTC, SYN], "id": 2}
        assert fake.ws_connections()[0].streams == (BTC, SYN)
        answer, _ = await request(ws, {"method": "UNSUBSCRIBE", "params": [SYN], "id": 3})
        assert answer == {"result": None, "id": 3}
        after = [symbol_of(await receive(ws)) for _ in range(20)]  # about a second of events
        assert set(after) == {"BTCUSDT"}
        answer, _ = await request(ws, {"method": "SUBSCRIBE", "params": ["nope@kline_5m"], "id": 4})
        assert answer["id"] == 4 and answer["error"]["code"] == 2
        answer, _ = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "five"})
        assert answer == {"result": [BTC], "id": "five"}
    stats = fake.stats
    assert stats.ws_subscribe_messages == 2 and stats.ws_unsubscribe_messages == 1
    assert stats.ws_control_messages == 5 and stats.ws_connections == 1


async def test_over_five_messages_a_second_disconnects(fake_exchange) -> None:
    fake = many_markets(fake_exchange, speed=0)
    async with connect(fake.ws_url + "/ws") as ws:
        for i in range(5):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        assert [(await receive(ws))["id"] for _ in range(5)] == list(range(5))
        await asyncio.sleep(1.1)  # a new second: five more are fine again
        for i in range(6):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10 + i}))
        answers = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    answers.append(await receive(ws))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert [a["id"] for a in answers] == [10, 11, 12, 13, 14]
    assert fake.stats.ws_rate_limited == 1


async def test_stream_limit_per_connection(fake_exchange) -> None:
    base = shared_data_path(MAIN_CSV)
    extra = synthetic_markets(base, 600, prefix="SYA") + synthetic_markets(base, 600, prefix="SYB")
    # Slow updates: this test is about requests, not about 1024 streams of events.
    fake = fake_exchange(start=NOW, speed=0, markets=extra, ws_update_ms=10_000)
    names = [m.stream for m in extra]
    async with connect(fake.ws_url + "/ws") as ws:
        answer, _ = await request(ws, {"method": "SUBSCRIBE", "params": names[:1024], "id": 1})
        assert answer == {"result": None, "id": 1}
        assert len(fake.ws_connections()[0].streams) == 1024
        answer, _ = await request(ws, {"method": "SUBSCRIBE", "params": names[1024:1025], "id": 2})
        assert answer["id"] == 2 and answer["error"]["code"] == 2
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert fake.stats.ws_stream_limit_hits == 1


async def test_url_stream_limit_and_connection_limit(fake_exchange) -> None:
    limits = WsLimits(max_streams=2, max_connections=3)
    fake = many_markets(fake_exchange, speed=0, ws_limits=limits)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(fake.stream_url(BTC, SYN, "ethusdt@kline_5m")):
            pass
    assert refused.value.response.status_code == 400
    async with connect(fake.stream_url(BTC, SYN)), connect(fake.ws_url + "/ws"):
        # The client's handshake can finish before the server's handler registers the socket.
        for _ in range(100):
            if fake.open_sockets() == 2:
                break
            await asyncio.sleep(0.02)
        assert fake.open_sockets() == 2
        with pytest.raises(InvalidStatus) as limited:
            async with connect(fake.ws_url + "/ws/" + BTC):
                pass
        assert limited.value.response.status_code == 429
    with pytest.raises(InvalidStatus):  # the limit counts attempts, not open sockets
        async with connect(fake.ws_url + "/ws"):
            pass
    assert fake.stats.ws_refused == 2 and fake.stats.ws_stream_limit_hits == 1


def test_synthetic_markets_are_real_data_shifted_and_scaled() -> None:
    base = load_market(shared_data_path(MAIN_CSV), None, None)
    started = time.perf_counter()
    markets = synthetic_markets(shared_data_path(MAIN_CSV), 200)
    assert time.perf_counter() - started < 1.0  # nothing is materialised
    assert [m.symbol for m in markets[:2]] == ["SYN001USDT", "SYN002USDT"]
    assert markets[-1].symbol == "SYN200USDT" and len({m.symbol for m in markets}) == 200
    rows = [m.rows for m in markets]
    assert all(isinstance(r, ShiftedRows) for r in rows)
    offsets = [r.offset for r in rows if isinstance(r, ShiftedRows)]
    assert len(set(offsets)) == 200 and all(o > 0 for o in offsets)  # all from other dates
    for market in (markets[0], markets[57], markets[-1]):
        shifted = market.rows
        assert isinstance(shifted, ShiftedRows)
        assert market.open_times is base.open_times and market.interval == "5m"
        factor = shifted.factor
        for index in (0, 1234, len(base.rows) - 1):
            row, source = shifted[index], base.rows[shifted.source_index(index)]
            assert (row.open_time, row.close_time) == (
                base.open_times[index],
                base.rows[index].close_time,
            )
            for name in ("open", "high", "low", "close"):
                assert getattr(row, name) == reference_scale(getattr(source, name), factor)
            assert row.volume == source.volume
            assert Decimal(row.low) <= min(Decimal(row.open), Decimal(row.close))
            assert Decimal(row.high) >= max(Decimal(row.open), Decimal(row.close))
            ratio = Decimal(row.close) / Decimal(source.close)
            assert abs(ratio / factor - 1) < Decimal("1e-4")
    hourly = synthetic_markets(shared_data_path(HOURLY_CSV), 2, interval="1h")
    assert [(m.symbol, m.interval, m.step_ms) for m in hourly] == [
        ("SYN001USDT", "1h", 3_600_000),
        ("SYN002USDT", "1h", 3_600_000),
    ]
    assert hourly[1].rows[10].open_time == hourly[1].open_times[10]
