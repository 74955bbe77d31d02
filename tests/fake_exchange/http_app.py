"""The fake exchange's aiohttp application: Binance REST routes, faults and /_fake controls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from candlecast.domain import iso_utc, parse_iso_utc
from tests.fake_exchange.dumps import add_dump_routes
from tests.fake_exchange.market import Market, kline_array, partial_row
from tests.fake_exchange.state import FakeState
from tests.fake_exchange.ws import announce_shutdown, connection_infos, drop_sockets, kline_socket

STATE: web.AppKey[FakeState] = web.AppKey("state", FakeState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_WEIGHTS = {"/api/v3/klines": 2, "/api/v3/exchangeInfo": 20}
_RESTRICTED_MSG = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)


class _RejectedError(Exception):
    """A Binance-style 400 with code and msg."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


async def _inject(fault: str, state: FakeState, request: web.Request) -> web.StreamResponse | None:
    """Returns the faulty response, or None when the request should then proceed normally."""
    cfg = state.faults.config
    if fault == "drop":
        if request.transport is not None:
            request.transport.abort()
        # The client never reads this: the connection is already gone.
        raise asyncio.CancelledError
    if fault == "limit_429":
        msg = "Too many requests; current limit of IP is 6000 requests per minute."
        return _error(429, -1003, msg, {"Retry-After": cfg.retry_after_429})
    if fault == "ban_418":
        msg = "Way too many requests; IP banned until further notice."
        return _error(418, -1003, msg, {"Retry-After": cfg.retry_after_418})
    if fault == "restricted_451":
        return _error(451, 0, _RESTRICTED_MSG)
    if fault == "blocked_403":
        return web.Response(status=403, text="<html><body>403 Forbidden</body></html>")
    if fault == "error_5xx":
        return web.Response(status=cfg.status_5xx, text="<html>Bad Gateway</html>")
    if fault == "malformed":
        return web.Response(
            status=200, text='[[1751155200000,"107296.7', content_type="application/json"
        )
    if fault == "empty":
        return web.json_response([])
    if fault == "slow":
        await asyncio.sleep(cfg.slow_seconds)
    return None


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Injects faults and adds the used-weight header to every /api/ response."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    state = request.app[STATE]
    state.stats.api_calls += 1
    fault = state.faults.next_fault(request.path)
    if fault is not None:
        faulty = await _inject(fault, state, request)
        if faulty is not None:
            return faulty
    used = state.weight.add(_WEIGHTS.get(request.path, 1))
    try:
        response = await handler(request)
    except _RejectedError as rejected:
        response = _error(400, rejected.code, rejected.msg)
    response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    return response


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise _RejectedError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def _check_symbol(state: FakeState, symbol: str | None) -> str:
    if not symbol:
        raise _RejectedError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null.")
    if symbol not in state.symbols():
        raise _RejectedError(-1121, "Invalid symbol.")
    return symbol


def _market(state: FakeState, request: web.Request) -> Market:
    symbol = _check_symbol(state, request.query.get("symbol"))
    # Only loaded intervals exist here; any other one is refused like an unknown one.
    market = state.find(symbol, request.query.get("interval", ""))
    if market is None:
        raise _RejectedError(-1120, "Invalid interval.")
    return market


async def _klines(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.stats.klines_calls += 1
    market = _market(state, request)
    limit = _int_param(request, "limit")
    limit = 500 if limit is None else limit
    if not 1 <= limit <= 1000:
        raise _RejectedError(-1130, "Invalid data sent for a parameter.")
    start, end = _int_param(request, "startTime"), _int_param(request, "endTime")
    now = state.clock.now_ms()
    hi = market.visible_end(now if end is None else min(now, end))
    if start is not None:
        lo = market.index_at_or_after(start)
        hi = min(hi, lo + limit)
    else:
        lo = max(0, hi - limit)
    rows = [kline_array(row) for row in market.rows[lo:hi]]
    if rows and market.rows[hi - 1].close_time >= now:
        rows[-1] = kline_array(partial_row(market.rows[hi - 1], now))
    return web.json_response(rows, dumps=lambda obj: json.dumps(obj, separators=(",", ":")))


async def _time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": request.app[STATE].clock.now_ms()})


async def _ping(request: web.Request) -> web.Response:
    return web.json_response({})


def _symbol_info(symbol: str) -> dict[str, Any]:
    quote = next((q for q in ("USDT", "USDC", "BTC", "ETH") if symbol.endswith(q)), symbol[-4:])
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": symbol[: -len(quote)],
        "quoteAsset": quote,
        "isSpotTradingAllowed": True,
    }


def _listed_symbols(request: web.Request, state: FakeState) -> list[str]:
    """Every served symbol, or those named by ?symbol= or ?symbols=["A","B"] as Binance does."""
    one, many = request.query.get("symbol"), request.query.get("symbols")
    if one is not None and many is not None:
        raise _RejectedError(-1128, "Combination of optional parameters invalid.")
    if one is not None:
        return [_check_symbol(state, one)]
    if many is None:
        return state.symbols()
    try:
        names = json.loads(many)
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _RejectedError(-1100, "Illegal characters found in parameter 'symbols'.")
    return [_check_symbol(state, name) for name in dict.fromkeys(names)]


async def _exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    infos = [_symbol_info(symbol) for symbol in _listed_symbols(request, state)]
    body = {"timezone": "UTC", "serverTime": state.clock.now_ms(), "symbols": infos}
    return web.json_response(body)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


def _clock_view(state: FakeState) -> dict[str, Any]:
    now = state.clock.now_ms()
    return {"now_ms": now, "now": iso_utc(now), "speed": state.clock.speed}


async def _control_clock(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "POST":
        body = await _json_body(request)
        now_ms = body.get("now_ms")
        if "now" in body:
            now_ms = parse_iso_utc(str(body["now"]))
        speed = body.get("speed")
        state.clock.set(
            now_ms=None if now_ms is None else int(now_ms),
            speed=None if speed is None else float(speed),
        )
        if body.get("advance_ms"):
            state.clock.advance(int(body["advance_ms"]))
    return web.json_response(_clock_view(state))


async def _control_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "POST":
        body = await _json_body(request)
        try:
            if body.pop("reset", False):
                state.faults.reset()
            state.faults.configure(**body)
        except TypeError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
    view = {"config": asdict(state.faults.config), "counters": state.faults.counters()}
    return web.json_response(view)


async def _control_ws(request: web.Request) -> web.Response:
    state = request.app[STATE]
    action = request.match_info["action"]
    count = len(state.sockets)
    if action == "drop":
        await drop_sockets(state)
    elif action == "shutdown":
        await announce_shutdown(state)
    else:
        raise web.HTTPNotFound(text=f"unknown websocket action {action!r}")
    return web.json_response({"action": action, "sockets": count})


async def _control_stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    view = {
        **asdict(state.stats),
        "faults": state.faults.counters(),
        "open_sockets": len(state.sockets),
        "connections": [asdict(info) for info in connection_infos(state)],
    }
    return web.json_response(view)


async def _control_reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.faults.reset()
    state.weight.reset()
    state.ws_attempts.reset()
    return web.json_response({"status": "ok"})


async def _ws(request: web.Request) -> web.StreamResponse:
    return await kline_socket(request, request.app[STATE])


async def _on_shutdown(app: web.Application) -> None:
    await drop_sockets(app[STATE])


def build_app(state: FakeState) -> web.Application:
    """Builds the aiohttp application serving every market in `state`."""
    app = web.Application(middlewares=[_api_middleware])
    app[STATE] = state
    app.router.add_get("/api/v3/klines", _klines)
    app.router.add_get("/api/v3/time", _time)
    app.router.add_get("/api/v3/ping", _ping)
    app.router.add_get("/api/v3/exchangeInfo", _exchange_info)
    app.router.add_get("/ws", _ws)
    app.router.add_get("/ws/{streams:.*}", _ws)
    app.router.add_get("/stream", _ws)
    app.router.add_route("*", "/_fake/clock", _control_clock)
    app.router.add_route("*", "/_fake/faults", _control_faults)
    app.router.add_post("/_fake/ws/{action}", _control_ws)
    app.router.add_get("/_fake/stats", _control_stats)
    app.router.add_post("/_fake/reset", _control_reset)
    add_dump_routes(app, state)
    app.on_shutdown.append(_on_shutdown)
    return app
