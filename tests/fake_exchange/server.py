"""Runs the fake exchange on 127.0.0.1 in a background thread with its own event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from tests.fake_exchange.faults import FaultConfig
from tests.fake_exchange.http_app import build_app
from tests.fake_exchange.market import Market, VirtualClock, load_market
from tests.fake_exchange.state import FakeState, Stats
from tests.fake_exchange.ws import announce_shutdown, drop_sockets

T = TypeVar("T")


class FakeExchange:
    """A loopback Binance stand-in replaying one CSV; use as a context manager."""

    def __init__(
        self,
        *,
        csv_path: Path,
        start_ms: int | None = None,
        speed: float = 1.0,
        symbol: str | None = None,
        interval: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_update_ms: int = 250,
        ws_heartbeat_s: float = 20.0,
    ) -> None:
        market = load_market(Path(csv_path), symbol, interval)
        if start_ms is None:
            # Default: a day into the data, mid-candle, so there is history and a live candle.
            start_ms = market.open_times[0] + 86_400_000 + market.step_ms // 2
        self.state = FakeState(
            market=market,
            clock=VirtualClock(start_ms=start_ms, speed=speed),
            ws_update_ms=ws_update_ms,
            ws_heartbeat_s=ws_heartbeat_s,
        )
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
        """Cuts every open kline WebSocket abruptly."""
        self._run(drop_sockets(self.state))

    def announce_shutdown(self) -> None:
        """Sends a serverShutdown event on every open kline WebSocket."""
        self._run(announce_shutdown(self.state))

    def open_sockets(self) -> int:
        """How many kline WebSockets are open."""
        return len(self.state.sockets)

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
