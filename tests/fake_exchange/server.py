"""Runs the fake exchange on 127.0.0.1 in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from tests.fake_exchange.faults import FaultConfig
from tests.fake_exchange.http_app import build_app
from tests.fake_exchange.market import Market, VirtualClock, load_market
from tests.fake_exchange.state import FakeState, Stats, WsLimits
from tests.fake_exchange.ws import (
    ConnectionInfo,
    announce_shutdown,
    connection_infos,
    drop_sockets,
)

T = TypeVar("T")


@dataclass(frozen=True)
class MarketSpec:
    """A CSV to serve; symbol and interval default to those in the file name."""

    csv_path: Path
    symbol: str | None = None
    interval: str | None = None


MarketSource = Market | MarketSpec | Path | str
"""What FakeExchange(markets=...) and add_market take: a loaded Market, a spec, or a CSV path."""


def resolve_market(source: MarketSource) -> Market:
    """Loads (or passes through) one market."""
    if isinstance(source, Market):
        return source
    if isinstance(source, MarketSpec):
        return load_market(Path(source.csv_path), source.symbol, source.interval)
    return load_market(Path(source), None, None)  # the key FakeExchange(csv_path=) caches


class FakeExchange:
    """A loopback Binance stand-in replaying CSVs, one market or many; a context manager.

    `csv_path` (with `symbol`/`interval`) is the first market, `state.market`; `markets` adds
    more, e.g. synthetic_markets(...). All share one virtual clock and one request-weight budget.
    """

    def __init__(
        self,
        *,
        csv_path: Path | None = None,
        start_ms: int | None = None,
        speed: float = 1.0,
        symbol: str | None = None,
        interval: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_update_ms: int = 250,
        ws_heartbeat_s: float = 20.0,
        markets: Iterable[MarketSource] = (),
        ws_limits: WsLimits | None = None,
    ) -> None:
        loaded = [resolve_market(source) for source in markets]
        if csv_path is not None:
            loaded.insert(0, load_market(Path(csv_path), symbol, interval))
        if not loaded:
            raise ValueError("pass csv_path or at least one market")
        market = loaded[0]
        if start_ms is None:
            # Default: a day into the data, mid-candle, so there is history and a live candle.
            start_ms = market.open_times[0] + 86_400_000 + market.step_ms // 2
        self.state = FakeState(
            market=market,
            clock=VirtualClock(start_ms=start_ms, speed=speed),
            ws_update_ms=ws_update_ms,
            ws_heartbeat_s=ws_heartbeat_s,
            ws_limits=ws_limits or WsLimits(),
        )
        for extra in loaded[1:]:
            self.state.add_market(extra)
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def market(self) -> Market:
        """The replayed candles."""
        return self.state.market

    @property
    def markets(self) -> dict[tuple[str, str], Market]:
        """Every served market by (SYMBOL, interval), the first one first (a copy)."""
        return dict(self.state.markets)

    def add_market(self, source: MarketSource) -> Market:
        """Serves one more market, also while running; its streams can be subscribed at once."""
        market = resolve_market(source)
        if self._loop is None:
            self.state.add_market(market)
        else:
            # On the server loop, so no handler sees the dict change mid-iteration.
            self._run(self._add_on_loop(market))
        return market

    async def _add_on_loop(self, market: Market) -> None:
        self.state.add_market(market)

    @property
    def clock(self) -> VirtualClock:
        """The exchange's virtual clock (set, advance, change speed)."""
        return self.state.clock

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._port

    @property
    def base_url(self) -> str:
        """REST base URL, e.g. http://127.0.0.1:PORT."""
        return f"http://{self._host}:{self._port}"

    @property
    def ws_url(self) -> str:
        """WebSocket base URL; streams live at {ws_url}/ws/<stream>."""
        return f"ws://{self._host}:{self._port}"

    def stream_url(self, *streams: str) -> str:
        """The combined-stream URL for stream names, e.g. stream_url("btcusdt@kline_5m")."""
        return f"{self.ws_url}/stream?streams={'/'.join(streams)}"

    @property
    def stats(self) -> Stats:
        """Counters of calls, connections and messages."""
        return self.state.stats

    def set_faults(self, **changes: Any) -> FaultConfig:
        """Changes fault rules (see FaultConfig) and restarts the request count."""
        return self.state.faults.configure(**changes)

    def clear_faults(self) -> None:
        """Turns every fault off."""
        self.state.faults.reset()

    def fault_counters(self) -> dict[str, Any]:
        """Requests seen and faults injected since the last configure/reset."""
        return self.state.faults.counters()

    def drop_websockets(self) -> None:
        """Cuts every open WebSocket (raw and combined) abruptly."""
        self._run(drop_sockets(self.state))

    def announce_shutdown(self) -> None:
        """Sends a serverShutdown event on every open kline WebSocket."""
        self._run(announce_shutdown(self.state))

    def open_sockets(self) -> int:
        """How many WebSockets (raw and combined) are open."""
        return len(self.state.sockets)

    def ws_connections(self) -> list[ConnectionInfo]:
        """Snapshots of the open WebSockets, oldest first: streams and message counts."""
        if self._loop is None:
            return []
        return self._run(self._infos())

    async def _infos(self) -> list[ConnectionInfo]:
        return connection_infos(self.state)

    def start(self) -> FakeExchange:
        """Binds the port and serves until stop()."""
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, args=(ready, errors), name="fake-exchange", daemon=True
        )
        self._thread.start()
        ready.wait(timeout=10)
        if errors:
            raise RuntimeError("fake exchange failed to start") from errors[0]
        return self

    def stop(self) -> None:
        """Closes sockets and the server, and joins the thread."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            self._run(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
        self._thread = None

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._bind())
        except BaseException as exc:  # reported to the starting thread
            errors.append(exc)
            ready.set()
            return
        ready.set()
        self._loop.run_forever()

    async def _bind(self) -> None:
        runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the fake exchange is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
