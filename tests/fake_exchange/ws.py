"""The fake exchange's kline WebSockets: raw and combined streams, live (un)subscribing, limits.

Routes, as on Binance: `/ws/<stream>` (several joined by `/` allowed) and bare `/ws` send raw
events; `/stream?streams=a/b/c` wraps each as {"stream": name, "data": event}. Every connection
takes SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS (and GET/SET_PROPERTY "combined") requests.
Limits (FakeState.ws_limits): over 1024 streams -> a refused handshake, or an error answer and
a 1008 close; over 5 incoming text/binary frames within a second -> a 1008 close; over 300
connection attempts in 5 minutes -> handshakes refused with 429. Ping/pong frames are not
counted: aiohttp answers them itself, and counting them would trip fast test heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from aiohttp import WSMsgType, web

from tests.fake_exchange.feeds import Feed
from tests.fake_exchange.state import FakeState

_IDS = count(1)
_POLICY_VIOLATION = 1008
_Answer = dict[str, Any]


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one open WebSocket, for tests to assert on."""

    id: int
    path: str
    combined: bool
    streams: tuple[str, ...]
    messages_sent: int
    messages_received: int


@dataclass(eq=False)
class Connection:
    """A live WebSocket: its subscriptions and the TCP transport to cut when dropping it."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    path: str
    combined: bool
    id: int = field(default_factory=lambda: next(_IDS))
    feeds: dict[str, Feed] = field(default_factory=dict)
    sent: int = 0
    received: int = 0
    arrivals: deque[float] = field(default_factory=deque)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def abort(self) -> None:
        """Closes the TCP connection without a close frame."""
        if self.transport is not None:
            self.transport.abort()

    def info(self) -> ConnectionInfo:
        """What a test can see of this connection."""
        return ConnectionInfo(
            self.id, self.path, self.combined, tuple(self.feeds), self.sent, self.received
        )

    def over_rate(self, limit: int) -> bool:
        """Counts one incoming frame; True when more than `limit` arrived within a second."""
        now = time.monotonic()
        self.arrivals.append(now)
        while self.arrivals and self.arrivals[0] <= now - 1.0:
            self.arrivals.popleft()
        return len(self.arrivals) > limit

    async def send(self, text: str, *, stream: str | None = None) -> bool:
        """Sends one frame unless `stream` is no longer subscribed; False when not sent.

        Under one lock with the request reader, so no event of a stream follows the answer
        to its UNSUBSCRIBE.
        """
        async with self.send_lock:
            if stream is not None and stream not in self.feeds:
                return False
            await self.ws.send_str(text)
            return True


def _url_streams(request: web.Request, combined: bool) -> list[str]:
    raw = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
    return list(dict.fromkeys(name for name in raw.split("/") if name))


def _refusal(state: FakeState, names: list[str]) -> web.Response | None:
    """The HTTP answer refusing a handshake, or None when the connection may open."""
    limits = state.ws_limits
    if not state.ws_attempts.admit(limits.max_connections):
        state.stats.ws_refused += 1
        msg = f"Too many connection attempts: over {limits.max_connections} in 5 minutes."
        return web.json_response({"code": -1003, "msg": msg}, status=429)
    if len(names) > limits.max_streams:
        state.stats.ws_stream_limit_hits += 1
        msg = f"Too many streams: {len(names)}, at most {limits.max_streams} per connection."
        return web.json_response({"code": -1, "msg": msg}, status=400)
    if any(state.find_stream(name) is None for name in names):
        return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
    return None


def _error(code: int, msg: str, req_id: Any) -> _Answer:
    return {"error": {"code": code, "msg": msg}, "id": req_id}


def _subscribe(conn: Connection, state: FakeState, names: list[str], req_id: Any) -> _Answer:
    state.stats.ws_subscribe_messages += 1
    for name in names:
        if state.find_stream(name) is None:
            return _error(2, f"Invalid request: unknown stream {name!r}", req_id)
    total = len(set(conn.feeds) | set(names))
    if total > state.ws_limits.max_streams:
        state.stats.ws_stream_limit_hits += 1
        msg = f"Invalid request: {total} streams, at most {state.ws_limits.max_streams}"
        return _error(2, msg, req_id)
    now = state.clock.now_ms()
    for name in names:
        market = state.find_stream(name)
        if name not in conn.feeds and market is not None:
            conn.feeds[name] = Feed(market, now, combined=conn.combined)
    return {"result": None, "id": req_id}


def _answer(conn: Connection, state: FakeState, text: str) -> _Answer:
    """The answer to one JSON request from the client."""
    state.stats.ws_control_messages += 1
    try:
        req = json.loads(text)
    except ValueError as exc:
        return _error(3, f"Invalid JSON: {exc}", None)
    if not isinstance(req, dict):
        return _error(3, "Invalid JSON: expected an object", None)
    req_id, method, params = req.get("id"), req.get("method"), req.get("params", [])
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, int | str)):
        return _error(2, "Invalid request: request ID must be an unsigned integer", None)
    if not isinstance(params, list):
        return _error(2, "Invalid request: params must be a list", req_id)
    if method in ("SUBSCRIBE", "UNSUBSCRIBE") and not all(isinstance(p, str) for p in params):
        return _error(2, "Invalid request: stream names must be strings", req_id)
    if method == "SUBSCRIBE":
        return _subscribe(conn, state, params, req_id)
    if method == "UNSUBSCRIBE":
        state.stats.ws_unsubscribe_messages += 1
        for name in params:
            conn.feeds.pop(name, None)
        return {"result": None, "id": req_id}
    if method == "LIST_SUBSCRIPTIONS":
        return {"result": list(conn.feeds), "id": req_id}
    if method == "GET_PROPERTY" and params == ["combined"]:
        return {"result": conn.combined, "id": req_id}
    if method == "SET_PROPERTY" and len(params) == 2 and params[0] == "combined":
        if not isinstance(params[1], bool):
            return _error(1, "Invalid value type: expected Boolean", req_id)
        conn.combined = params[1]
        for feed in conn.feeds.values():
            feed.combined = params[1]
        return {"result": None, "id": req_id}
    variants = "SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY"
    return _error(
        2, f"Invalid request: unknown variant {method!r}, expected one of {variants}", req_id
    )


async def _read(conn: Connection, state: FakeState) -> None:
    """Answers the client's requests and enforces the incoming-message limit."""
    async for msg in conn.ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        conn.received += 1
        if conn.over_rate(state.ws_limits.max_incoming_per_s):
            state.stats.ws_rate_limited += 1
            await _close(conn, "Too many messages")
            return
        hits = state.stats.ws_stream_limit_hits
        answer = _answer(conn, state, msg.data if msg.type == WSMsgType.TEXT else "")
        await conn.send(json.dumps(answer))
        if state.stats.ws_stream_limit_hits > hits:
            await _close(conn, "Too many streams")  # a client over the limit is cut off
            return


async def _close(conn: Connection, reason: str) -> None:
    with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
        await asyncio.wait_for(
            conn.ws.close(code=_POLICY_VIOLATION, message=reason.encode()), timeout=1.0
        )
    conn.abort()


async def _stall(request: web.Request, reader: asyncio.Task[None], limit_s: float = 300.0) -> None:
    """Goes silent like a hung server: reads nothing (so no pongs) until the client leaves."""
    reader.cancel()
    deadline = asyncio.get_running_loop().time() + limit_s
    transport = request.transport
    while transport is not None and not transport.is_closing():
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)


async def kline_socket(request: web.Request, state: FakeState) -> web.StreamResponse:
    """Serves /ws, /ws/<stream>[/<stream>...] and /stream?streams=a/b/c."""
    combined = request.path.rstrip("/") == "/stream"
    names = _url_streams(request, combined)
    refused = _refusal(state, names)
    if refused is not None:
        return refused
    stalls = state.faults.config.ws_stall_after_messages > 0
    # A server about to stall must not ping either; aiohttp pings on its own otherwise.
    ws = web.WebSocketResponse(heartbeat=None if stalls else state.ws_heartbeat_s)
    await ws.prepare(request)
    conn = Connection(ws, request.transport, request.path_qs, combined)
    now = state.clock.now_ms()
    for name in names:
        market = state.find_stream(name)
        assert market is not None  # checked by _refusal
        conn.feeds[name] = Feed(market, now, combined=combined)
    state.sockets.add(conn)
    state.stats.ws_connections += 1
    reader = asyncio.create_task(_read(conn, state))
    try:
        while not ws.closed and not reader.done():
            now = state.clock.now_ms()
            drop_every = state.faults.config.ws_drop_every_messages
            for name, feed in list(conn.feeds.items()):
                for text in feed.poll(state, now):
                    if not await conn.send(text, stream=name):
                        break  # unsubscribed while this batch was being sent
                    conn.sent += 1
                    state.stats.ws_messages += 1
                    state.stats.ws_stream_messages[name] += 1
                    if drop_every and conn.sent % drop_every == 0:
                        conn.abort()
                        return ws
                    if state.faults.take_ws_stall(conn.sent):
                        await _stall(request, reader)
                        conn.abort()
                        return ws
            await asyncio.sleep(state.ws_update_ms / 1000)
    except (ConnectionError, RuntimeError):
        pass  # the client went away or the socket was dropped on purpose
    finally:
        state.sockets.discard(conn)
        reader.cancel()
    return ws


async def drop_sockets(state: FakeState) -> None:
    """Cuts every socket's TCP connection, as a network failure would."""
    for conn in list(state.sockets):
        conn.abort()
        state.sockets.discard(conn)


async def announce_shutdown(state: FakeState) -> None:
    """Sends Binance's serverShutdown event (never wrapped) on every socket."""
    text = json.dumps({"e": "serverShutdown", "E": state.clock.now_ms()})
    for conn in list(state.sockets):
        try:
            await conn.send(text)
        except (ConnectionError, RuntimeError):
            state.sockets.discard(conn)


def connection_infos(state: FakeState) -> list[ConnectionInfo]:
    """Snapshots of the open sockets, oldest first; call on the server loop."""
    return sorted((conn.info() for conn in state.sockets), key=lambda info: info.id)
