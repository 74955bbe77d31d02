"""The kline WebSocket stream of the fake exchange: updates, closes, drops and shutdowns."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from tests.fake_exchange.market import Market, Row, partial_row
from tests.fake_exchange.state import FakeState

# After a big clock jump only this many closes are sent, like a real stream that skipped ahead.
MAX_CATCH_UP_CLOSES = 10


@dataclass(eq=False)
class _Socket:
    """A live kline socket and the TCP transport to cut when dropping it abruptly."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None

    def abort(self) -> None:
        """Closes the TCP connection without a close frame."""
        if self.transport is not None:
            self.transport.abort()


def kline_message(market: Market, row: Row, *, event_ms: int, closed: bool) -> str:
    """A Binance-shaped kline event for a final (closed) or partial row."""
    first_trade = row.open_time // 1000 if row.trades else -1
    last_trade = first_trade + row.trades - 1 if row.trades else -1
    k = {
        "t": row.open_time, "T": row.close_time, "s": market.symbol, "i": market.interval,
        "f": first_trade, "L": last_trade, "o": row.open, "c": row.close, "h": row.high,
        "l": row.low, "v": row.volume, "n": row.trades, "x": closed, "q": row.quote_volume,
        "V": row.taker_buy_base, "Q": row.taker_buy_quote, "B": "0",
    }  # fmt: skip
    return json.dumps({"e": "kline", "E": event_ms, "s": market.symbol, "k": k})


async def _drain(ws: web.WebSocketResponse) -> None:
    """Reads client frames so pongs and close frames are processed."""
    async for msg in ws:
        if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break


def _pending_closes(market: Market, next_close: int, now: int) -> range:
    end = next_close
    while end < len(market.rows) and market.rows[end].close_time < now:
        end += 1
    return range(max(next_close, end - MAX_CATCH_UP_CLOSES), end)


def _with_faults(state: FakeState, messages: list[tuple[str, bool]], held: list[str]) -> list[str]:
    """Applies the duplicate and reorder faults to (text, closed) messages; `held` carries over."""
    cfg = state.faults.config
    out: list[str] = []
    for text, closed in messages:
        if not closed:
            out.append(text)
            continue
        if cfg.ws_reorder_closes and not held:
            held.append(text)  # sent after the next close, so that one arrives first
            state.faults.count_ws("ws_reorder")
            continue
        out.append(text)
        if cfg.ws_duplicate_closes:
            out.append(text)
            state.faults.count_ws("ws_duplicate")
        out.extend(held)
        held.clear()
    return out


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
    """Serves /ws/<symbol>@kline_<interval> for the loaded market."""
    market = state.market
    expected = f"{market.symbol.lower()}@kline_{market.interval}"
    if request.match_info["stream"] != expected:
        return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
    stalls = state.faults.config.ws_stall_after_messages > 0
    # A server about to stall must not ping either; aiohttp pings on its own otherwise.
    ws = web.WebSocketResponse(heartbeat=None if stalls else state.ws_heartbeat_s)
    await ws.prepare(request)
    sock = _Socket(ws, request.transport)
    state.sockets.add(sock)
    state.stats.ws_connections += 1
    reader = asyncio.create_task(_drain(ws))
    now = state.clock.now_ms()
    # Like Binance, a new connection hears about the current candle, not earlier ones.
    next_close = market.visible_end(now)
    if next_close > 0 and market.rows[next_close - 1].close_time >= now:
        next_close -= 1
    sent = 0
    held: list[str] = []
    try:
        while not ws.closed and not reader.done():
            now = state.clock.now_ms()
            messages: list[tuple[str, bool]] = []
            closes = _pending_closes(market, next_close, now)
            for i in closes:
                row = market.rows[i]
                messages.append((kline_message(market, row, event_ms=now, closed=True), True))
            next_close = max(next_close, closes.stop)
            current = market.visible_end(now) - 1
            if current >= 0 and market.rows[current].close_time >= now:
                row = partial_row(market.rows[current], now)
                messages.append((kline_message(market, row, event_ms=now, closed=False), False))
            drop_every = state.faults.config.ws_drop_every_messages
            for text in _with_faults(state, messages, held):
                await ws.send_str(text)
                sent += 1
                state.stats.ws_messages += 1
                if drop_every and sent % drop_every == 0:
                    sock.abort()
                    return ws
                if state.faults.take_ws_stall(sent):
                    await _stall(request, reader)
                    sock.abort()
                    return ws
            await asyncio.sleep(state.ws_update_ms / 1000)
    except (ConnectionError, RuntimeError):
        pass  # the client went away or the socket was dropped on purpose
    finally:
        state.sockets.discard(sock)
        reader.cancel()
    return ws


async def drop_sockets(state: FakeState) -> None:
    """Cuts every kline socket's TCP connection, as a network failure would."""
    for sock in list(state.sockets):
        sock.abort()
        state.sockets.discard(sock)


async def announce_shutdown(state: FakeState) -> None:
    """Sends Binance's serverShutdown event on every socket."""
    text = json.dumps({"e": "serverShutdown", "E": state.clock.now_ms()})
    for sock in list(state.sockets):
        try:
            await sock.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            state.sockets.discard(sock)
