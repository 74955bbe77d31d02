"""PairStream against a small server speaking Binance's combined-stream protocol.

The server enforces Binance's limits (streams per connection, 5 incoming messages per second)
by recording a violation and cutting the connection, as Binance does, so a client that breaks
them fails these tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.server import ServerConnection, serve

from candlecast.domain import Pair
from candlecast.exchange.rest import BinanceRest
from candlecast.exchange.stream import (
    KlineClosed,
    KlineUpdate,
    PairState,
    PairStream,
    Reconnected,
    StreamEvent,
    TokenBucket,
    stream_name,
)
from tests.fake_exchange import WsLimits, synthetic_markets
from tests.shared_data import MAIN_CSV, shared_data_path

T0 = 1_751_155_200_000
START = "2025-09-27T00:04:00Z"  # the fake exchange's clock: a minute before a close
STEP = 300_000
SYMBOLS = ["BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE"]
SYMBOLS += ["TRX", "LINK", "DOT", "LTC", "AVAX", "ATOM", "UNI"]
PAIRS = [Pair(f"{s}USDT", "5m") for s in SYMBOLS]


def kline(pair: Pair, open_time: int, *, closed: bool, close: str = "107285.460") -> dict[str, Any]:
    k: dict[str, Any] = dict(t=open_time, T=open_time + STEP - 1, s=pair.symbol, i=pair.interval)
    k.update(o="107296.79", c=close, h="107296.79", l="107285.45", v="4.55229", n=9, x=closed)
    k.update(q="488432.1", V="1.0", Q="107290.0", B="0")
    return {"e": "kline", "E": open_time + 1000, "s": pair.symbol, "k": k}


@dataclass(eq=False)
class Peer:
    """One client connection as the server sees it."""

    ws: ServerConnection
    path: str
    streams: set[str]
    inbox: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


class ComboServer:
    """Binance's combined streams in miniature: /stream?streams=a/b, SUBSCRIBE and friends."""

    def __init__(self, *, max_streams: int = 1024, refuse: frozenset[str] = frozenset()) -> None:
        self.max_streams = max_streams
        self.refuse = refuse  # stream names whose SUBSCRIBE is answered with an error
        self.peers: list[Peer] = []
        self.connect_times: list[float] = []
        self.violations: list[str] = []
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        self.connect_times.append(time.monotonic())
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        names = parse_qs(parts.query).get("streams", [""])[0].split("/")
        if parts.path != "/stream" or not all(names):
            self.violations.append(f"bad path {ws.request.path}")
            await ws.close(1008, "bad path")
            return
        if len(names) > self.max_streams:
            self.violations.append(f"{len(names)} streams in the URL")
            await ws.close(1008, "too many streams")
            return
        peer = Peer(ws, ws.request.path, set(names))
        self.peers.append(peer)
        async for raw in ws:
            now = time.monotonic()
            body = json.loads(raw)
            peer.inbox.append((now, body))
            if sum(1 for t, _ in peer.inbox if now - t < 1.0) > 5:
                self.violations.append("more than 5 messages in a second")
                await ws.close(1008, "too many messages")
                return
            await ws.send(json.dumps(self.answer(peer, body)))

    def answer(self, peer: Peer, body: dict[str, Any]) -> dict[str, Any]:
        method, params, request_id = body["method"], body.get("params", []), body["id"]
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(peer.streams), "id": request_id}
        if method == "SUBSCRIBE":
            if self.refuse & set(params):
                error = {"code": 2, "msg": "Invalid request: unknown stream"}
                return {"error": error, "id": request_id}
            peer.streams.update(params)
            if len(peer.streams) > self.max_streams:
                self.violations.append(f"{len(peer.streams)} streams on one connection")
        elif method == "UNSUBSCRIBE":
            peer.streams.difference_update(params)
        return {"result": None, "id": request_id}

    def all_streams(self) -> set[str]:
        return set().union(*(p.streams for p in self.live()))

    def live(self) -> list[Peer]:
        return [p for p in self.peers if p.ws.state.name == "OPEN"]

    async def publish(self, pair: Pair, open_time: int, *, closed: bool = True) -> int:
        """Sends a kline to every connection subscribed to the pair; returns how many."""
        name = stream_name(pair)
        text = json.dumps({"stream": name, "data": kline(pair, open_time, closed=closed)})
        peers = [p for p in self.live() if name in p.streams]
        for peer in peers:
            await peer.ws.send(text)
        return len(peers)

    async def broadcast(self, text: str) -> None:
        for peer in self.live():
            await peer.ws.send(text)


@asynccontextmanager
async def combo_server(**options: Any) -> AsyncIterator[ComboServer]:
    server = ComboServer(**options)
    async with serve(server.handler, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        server.url = f"ws://127.0.0.1:{port}/"
        yield server


@asynccontextmanager
async def consuming(stream: PairStream) -> AsyncIterator[list[StreamEvent]]:
    """Iterates the stream in the background, collecting its events."""
    events: list[StreamEvent] = []

    async def consume() -> None:
        async for event in stream:
            events.append(event)

    task = asyncio.create_task(consume())
    try:
        yield events
    finally:
        await stream.close()
        await asyncio.wait_for(task, 5)


async def until(check: Callable[[], bool], what: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def make(url: str, pairs: list[Pair], **options: Any) -> PairStream:
    fast: dict[str, Any] = {"backoff_base": 0.05, "backoff_max": 0.2, "open_timeout": 2.0}
    return PairStream(ws_base_url=url, pairs=pairs, **fast, **options)


def closes(events: list[StreamEvent]) -> list[KlineClosed]:
    return [e for e in events if isinstance(e, KlineClosed)]


async def test_one_connection_carries_many_pairs_with_exact_values() -> None:
    async with combo_server() as server:
        stream = make(server.url, PAIRS[:5])
        async with consuming(stream) as events:
            await until(lambda: len(server.live()) == 1 and stream.state.connected, "connect")
            assert server.live()[0].streams == {stream_name(p) for p in PAIRS[:5]}
            await server.broadcast("not json")
            await server.broadcast(json.dumps({"stream": "btcusdt@trade", "data": {"e": "trade"}}))
            await server.broadcast(json.dumps({"result": None, "id": 999}))
            for i, pair in enumerate(PAIRS[:5]):
                assert await server.publish(pair, T0 + i * STEP, closed=False) == 1
                assert await server.publish(pair, T0 + i * STEP) == 1
            await until(lambda: len(closes(events)) == 5, "five closes")
        by_pair = {e.pair: e.candle for e in closes(events)}
        assert set(by_pair) == set(PAIRS[:5])
        for i, pair in enumerate(PAIRS[:5]):
            candle = by_pair[pair]
            assert Pair(candle.symbol, candle.interval) == pair
            assert candle.open_time == T0 + i * STEP
            assert str(candle.close) == "107285.460" and candle.volume == Decimal("4.55229")
        assert {e.pair for e in events if isinstance(e, KlineUpdate)} == set(PAIRS[:5])
        state = stream.state
        assert state.connects == 1 and state.reconnects == 0 and not state.connected
        assert {p.pair: p.last_closed_open_time for p in state.pairs} == {
            pair: T0 + i * STEP for i, pair in enumerate(PAIRS[:5])
        }
        assert server.violations == []


async def test_pairs_added_and_removed_from_another_thread_keep_the_others_flowing() -> None:
    async with combo_server() as server:
        stream = make(server.url, PAIRS[:2])
        async with consuming(stream) as events:
            await until(lambda: stream.state.connected, "connect")

            def burst() -> None:  # one call per pair, as a caller following pairs one by one
                for pair in PAIRS[2:12]:
                    stream.add_pairs([pair])
                stream.remove_pairs([PAIRS[1]])

            await asyncio.to_thread(burst)
            wanted = {stream_name(p) for p in [PAIRS[0], *PAIRS[2:12]]}
            await until(lambda: server.live()[0].streams == wanted, "the new subscription set")
            await until(lambda: not stream.state.connections[0].pending, "answers")
            peer = server.live()[0]
            # Batched: far fewer messages than the 11 changes, and under 5 per second.
            assert 2 <= len(peer.inbox) <= 4
            for pair in (PAIRS[0], *PAIRS[2:12]):
                assert await server.publish(pair, T0) == 1
            assert await server.publish(PAIRS[1], T0) == 0
            await until(lambda: len(closes(events)) == 11, "a close from every pair")
            stream.remove_pairs([PAIRS[0]])  # on the loop itself, applied at once
            assert PAIRS[0] not in stream.pairs
        assert len(server.peers) == 1 and stream.state.reconnects == 0
        assert not any(isinstance(e, Reconnected) for e in events)
        assert PAIRS[1] not in {e.pair for e in closes(events)}
        assert server.violations == []


async def test_past_the_stream_limit_more_connections_open_and_are_refilled() -> None:
    async with combo_server(max_streams=3) as server:
        stream = make(server.url, PAIRS[:7], max_streams_per_connection=3)
        async with consuming(stream) as events:
            await until(lambda: len(server.live()) == 3 and stream.state.connected, "3 sockets")
            assert sorted(len(p.streams) for p in server.live()) == [1, 3, 3]
            stream.add_pairs(PAIRS[7:9])  # fills the third connection by SUBSCRIBE
            await until(lambda: all(len(p.streams) == 3 for p in server.live()), "full sockets")
            assert len(server.peers) == 3
            stream.add_pairs(PAIRS[9:10])
            await until(lambda: len(server.live()) == 4, "a fourth connection")
            stream.remove_pairs(PAIRS[:2])
            stream.add_pairs(PAIRS[10:12])  # back into the room the removal left
            wanted = {stream_name(p) for p in PAIRS[2:12]}
            await until(lambda: server.all_streams() == wanted, "refill")
            assert len(server.peers) == 4
            for pair in PAIRS[2:12]:
                assert await server.publish(pair, T0) == 1
            await until(lambda: len(closes(events)) == 10, "ten closes")
        assert [c.streams for c in stream.state.connections] == [3, 3, 3, 1]
        assert server.violations == []


async def test_a_dropped_connection_names_each_of_its_pairs_to_refill() -> None:
    async with combo_server(max_streams=2) as server:
        stream = make(server.url, PAIRS[:3], max_streams_per_connection=2)
        async with consuming(stream) as events:
            await until(lambda: len(server.live()) == 2 and stream.state.connected, "connect")
            for i, pair in enumerate(PAIRS[:3]):
                await server.publish(pair, T0 + i * STEP)
            await until(lambda: len(closes(events)) == 3, "three closes")
            stream.add_pairs([PAIRS[3]])  # joins connection 1 live, then shares its fate
            joined = stream_name(PAIRS[3])
            await until(lambda: any(joined in p.streams for p in server.live()), "subscribed")
            victim = next(p for p in server.live() if stream_name(PAIRS[2]) in p.streams)
            victim.ws.transport.abort()
            await until(lambda: any(isinstance(e, Reconnected) for e in events), "reconnect")
            await server.publish(PAIRS[0], T0 + 5 * STEP)  # the other connection never stopped
            await until(lambda: len(closes(events)) == 4, "a close on the other connection")
            await server.broadcast(json.dumps({"e": "serverShutdown", "E": T0}))
            await until(lambda: sum(isinstance(e, Reconnected) for e in events) == 3, "renewals")
        reconnects = [e for e in events if isinstance(e, Reconnected)]
        dropped = reconnects[0]
        assert dropped.reason == "dropped" and dropped.connection == 1
        assert {r.pair: r.last_closed_open_time for r in dropped.resumes} == {
            PAIRS[2]: T0 + 2 * STEP,
            PAIRS[3]: None,
        }
        assert dropped.last_closed_open_time is None  # one pair has no close yet: fill it all
        assert {e.reason for e in reconnects[1:]} == {"server_shutdown"}
        assert {e.connection for e in reconnects[1:]} == {0, 1}
        assert {p for e in reconnects[1:] for p in e.pairs} == set(PAIRS[:4])
        assert len(server.peers) == 5 and server.violations == []


async def test_a_refused_subscription_is_reported_and_the_rest_carry_on() -> None:
    bad = Pair("NOSUCHCOIN", "5m")
    async with combo_server(refuse=frozenset({stream_name(bad)})) as server:
        stream = make(server.url, PAIRS[:1])
        async with consuming(stream) as events:
            await until(lambda: stream.state.connected, "connect")
            stream.add_pairs([bad])
            await until(lambda: pair_state(stream, bad).error is not None, "refusal")
            stream.add_pairs([PAIRS[1]])
            await until(lambda: len(server.live()[0].streams) == 2, "the good pair")
            for pair in PAIRS[:2]:
                await server.publish(pair, T0)
            await until(lambda: len(closes(events)) == 2, "two closes")
        state = stream.state
        assert state.last_error is not None and "NOSUCHCOIN" in state.last_error.upper()
        refused = pair_state(stream, bad)
        assert refused.error is not None and "unknown stream" in refused.error
        assert not refused.subscribed and pair_state(stream, PAIRS[1]).subscribed
        assert state.connects == 1 and server.violations == []


def pair_state(stream: PairStream, pair: Pair) -> PairState:
    found = stream.state.pair(pair)
    assert found is not None, f"{pair} is missing from the state"
    return found


async def test_connects_wait_for_the_connection_budget_and_the_url_is_capped() -> None:
    budget = TokenBucket(rate=5.0, capacity=1.0)  # one connect per 0.2 s
    async with combo_server(max_streams=3) as server:
        options = {"max_streams_per_connection": 3, "max_url_streams": 2}
        stream = make(server.url, PAIRS[:12], connect_limiter=budget, **options)
        async with consuming(stream):
            await until(lambda: sum(len(p.streams) for p in server.live()) == 12, "all streams")
        starts = sorted(server.connect_times)
        assert len(starts) == 4
        assert all(b - a >= 0.15 for a, b in itertools.pairwise(starts))
        assert budget.waited_seconds > 0.4
        assert all(len(p.path.split("=")[1].split("/")) == 2 for p in server.peers)
        assert server.violations == []


async def test_control_messages_are_paced_under_five_per_second() -> None:
    async with combo_server() as server:
        stream = make(server.url, PAIRS[:1], max_params_per_message=1)
        async with consuming(stream):
            await until(lambda: stream.state.connected, "connect")
            stream.add_pairs(PAIRS[1:9])  # eight SUBSCRIBE messages of one stream each
            wanted = {stream_name(p) for p in PAIRS[:9]}
            await until(lambda: server.all_streams() == wanted, "eight subscriptions", 10.0)
        sent = [t for t, body in server.peers[0].inbox if body["method"] == "SUBSCRIBE"]
        assert len(sent) == 8 and sent[-1] - sent[0] >= 1.6
        assert len(server.peers) == 1 and server.violations == []


@pytest.mark.shared_data
async def test_against_the_fake_exchange_every_dropped_pair_gap_is_filled(fake_exchange) -> None:
    # Four real-data markets, two streams per connection; a 5m candle closes every real second.
    syn = synthetic_markets(shared_data_path(MAIN_CSV), 4)
    limits = WsLimits(max_streams=2)
    fake = fake_exchange(start=START, speed=300, ws_update_ms=50, markets=syn, ws_limits=limits)
    pairs = [Pair("BTCUSDT", "5m"), *(Pair(m.symbol, m.interval) for m in syn[:3])]
    stream = make(fake.ws_url, pairs, max_streams_per_connection=2)
    late = Pair(syn[3].symbol, syn[3].interval)

    def per_pair(events: list[StreamEvent]) -> dict[Pair, list[int]]:
        found: dict[Pair, list[int]] = {}
        for event in closes(events):
            found.setdefault(event.pair, []).append(event.candle.open_time)
        return found

    async with consuming(stream) as events:
        await until(lambda: len(per_pair(events)) == 4, "a close from each pair", 15)
        await asyncio.to_thread(stream.add_pairs, [late])  # a fifth pair from another thread
        await asyncio.to_thread(fake.drop_websockets)
        await until(lambda: sum(isinstance(e, Reconnected) for e in events) >= 2, "reconnects")
        await until(lambda: min(map(len, per_pair(events).values())) >= 3, "closes after", 15)
        connections = fake.ws_connections()
    reconnects = [e for e in events if isinstance(e, Reconnected)]
    assert {p for e in reconnects for p in e.pairs} >= set(pairs)
    assert len(connections) == 3 and all(len(c.streams) <= 2 for c in connections)
    stats = fake.stats
    assert stats.ws_stream_limit_hits == 0 and stats.ws_rate_limited == 0
    received = per_pair(events)
    assert set(received) == {*pairs, late}
    with BinanceRest(base_url=fake.base_url) as rest:
        for event in reconnects:
            for resume in event.resumes:
                seen = received[resume.pair]
                if resume.last_closed_open_time is None:
                    continue  # no close before the drop (the late pair): the store says where
                start = resume.last_closed_open_time + STEP
                symbol, end = resume.pair.symbol, max(seen)
                gap = rest.closed_klines(symbol, "5m", start_ms=start, end_ms=end)
                # What the stream sent and REST filled in cover every candle, with equal values.
                merged = sorted({*seen, *(c.open_time for c in gap)})
                assert merged == list(range(min(seen), max(seen) + STEP, STEP))
                rest_close = {c.open_time: c.close for c in gap}
                for event_ in closes(events):
                    if event_.pair == resume.pair and event_.candle.open_time in rest_close:
                        assert event_.candle.close == rest_close[event_.candle.open_time]
