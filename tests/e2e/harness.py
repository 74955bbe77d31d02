"""Starts `candlecast serve` against the fake exchange, and drives Debian's Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
REPO = Path(__file__).resolve().parents[2]
PAGES = ("/", "/charts", "/forecasts", "/models", "/jobs", "/guide", "/guide/architecture")
# The replay starts mid-candle; at 60x a 5m candle closes every 5 s.
LIVE_START = "2025-09-20T12:02:30Z"
# Where the live service's nav says Adminer is (nothing listens: links are only checked).
ADMINER_URL = "http://127.0.0.1:9/adminer/"


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Server:
    """A running `candlecast serve` (with the dashboard) and its log."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@contextmanager
def serve(
    tmp_path: Path, args: tuple[str, ...] = (), /, *, binance_url: str, ws_url: str, **settings: str
) -> Iterator[Server]:
    """Runs `candlecast serve [args]` on the SQLite database `candlecast.db` in tmp_path (a
    fresh one unless the test stored data there first); stops it with SIGTERM at the end."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": f"sqlite:///{tmp_path / 'candlecast.db'}",
            "CANDLECAST_BINANCE_URL": binance_url,
            "CANDLECAST_BINANCE_WS_URL": ws_url,
            "CANDLECAST_BACKFILL_DAYS": "30",
            "CANDLECAST_TRAIN_DAYS": "30",
            "CANDLECAST_INGEST_EVERY_SECONDS": "15",
            "CANDLECAST_TRAIN_EVERY_SECONDS": "600",
            "CANDLECAST_RECONCILE_EVERY_SECONDS": "600",
            "CANDLECAST_HTTP_MAX_RETRIES": "1",
            "CANDLECAST_HTTP_TIMEOUT_SECONDS": "3",
            "CANDLECAST_API_TOKEN": "e2e-token-0123456789abcdef",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            **settings,
        }
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "candlecast.cli", "serve", "--port", str(port), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path)

    def up() -> bool:
        try:
            return server.get("/api/version").status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        wait_for(up, timeout=30, what="the server to answer")
        assert process.poll() is None, server.log()
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@dataclass
class PageWatch:
    """Console errors, page errors, failed requests and error responses seen by a page."""

    problems: list[str] = field(default_factory=list)
    # True while the test itself navigates (reload): requests it cancels are not failures.
    navigating: bool = False

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def _failed(self, request: Any) -> None:
        aborted = request.failure == "net::ERR_ABORTED"
        # The live poll (/api/version?symbol=..) is cut short by any navigation.
        polled = request.url.split("?", 1)[0].endswith("/api/version")
        if aborted and (self.navigating or polled):
            return  # cancelled by a navigation (reload), not a failure
        self.problems.append(f"request failed: {request.url} {request.failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")


def wait_ready(page: Any, *, timeout: float = 20) -> float:
    """Waits until the page's scripts report their charts drawn (window.__ccReady)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = page.evaluate("window.__ccReady")
        if ready is not None:
            return float(ready)
        page.wait_for_timeout(100)
    raise AssertionError(f"{page.url} did not finish drawing within {timeout:.0f} s")


_LAYOUT_JS = """() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth) {
    problems.push("the page scrolls sideways: " + doc.scrollWidth + " > " + doc.clientWidth);
  }
  document.querySelectorAll(".nav a").forEach((a) => {
    const box = a.getBoundingClientRect();
    if (box.left < 0 || box.right > doc.clientWidth) {
      problems.push("nav entry cut off: " + a.textContent.trim());
    }
  });
  document.querySelectorAll("table").forEach((table, i) => {
    const name = table.id || table.className || "table " + i;
    const block = getComputedStyle(table).display === "block";
    const box = block ? table : table.parentElement;
    if (box.scrollWidth <= box.clientWidth + 1) return;
    const style = getComputedStyle(box);
    // Markdown tables may scroll inside their box when shadows at the edges say so.
    const cued = table.closest(".doc") && ["auto", "scroll"].includes(style.overflowX) &&
      style.backgroundImage.includes("gradient");
    if (!cued) {
      problems.push("table " + name + " is cut: " + box.scrollWidth + " > " + box.clientWidth);
    }
  });
  return problems;
}"""


def layout_problems(page: Any) -> list[str]:
    """What does not fit the viewport: sideways scrolling of the page, a nav entry cut off, a
    table wider than its box (save Markdown tables that scroll with a visible cue)."""
    problems: list[str] = page.evaluate(_LAYOUT_JS)
    return problems


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


class PrefixProxy:
    """A reverse proxy on 127.0.0.1 that serves `upstream` under `prefix`, as Traefik or nginx
    would with a strip-prefix rule: `/prefix/x` is forwarded as `/x`; anything outside the
    prefix answers 404. Runs aiohttp in a thread of its own. `seen` lists every request path."""

    def __init__(self, upstream: str, prefix: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.prefix = prefix.rstrip("/")
        self.seen: list[str] = []
        self.outside: list[str] = []
        self.port = free_port()
        self._loop: Any = None
        self._thread: Any = None
        self._session: Any = None
        self._runner: Any = None

    @property
    def base_url(self) -> str:
        """The public URL of the prefix, e.g. http://127.0.0.1:PORT/candlecast."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    async def _forward(self, request: Any) -> Any:
        from aiohttp import web
        from yarl import URL

        # The raw target, still percent-encoded, as a proxy forwards it (no normalizing).
        raw = request.raw_path
        path, _, query = raw.partition("?")
        self.seen.append(raw)
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            self.outside.append(raw)
            return web.Response(status=404, text=f"{path} is outside {self.prefix}")
        inner = path[len(self.prefix) :] or "/"
        url = URL(self.upstream + inner + (f"?{query}" if query else ""), encoded=True)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["X-Forwarded-Prefix"] = self.prefix
        body = await request.read()
        async with self._session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as answer:
            payload = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS}
            return web.Response(status=answer.status, body=payload, headers=out)

    def __enter__(self) -> PrefixProxy:
        import asyncio
        import threading

        from aiohttp import ClientSession, web

        started = threading.Event()

        async def main() -> None:
            # Bodies pass through as sent (gzip stays gzip), as a real proxy does.
            self._session = ClientSession(auto_decompress=False)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._forward)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            started.set()

        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(main())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="prefix-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise AssertionError("the prefix proxy did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        import asyncio

        async def close() -> None:
            await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class Live:
    """A running service reached through a prefix proxy, as a deployment behind Traefik is."""

    server: Server
    proxy: PrefixProxy

    @property
    def base_url(self) -> str:
        """The public URL, prefix included (http://127.0.0.1:PORT/candlecast)."""
        return self.proxy.base_url

    def get(self, path: str) -> httpx.Response:
        """GET through the proxy, as a browser would."""
        return httpx.get(self.base_url + path, timeout=10)

    def log(self) -> str:
        return self.server.log()


@contextmanager
def live_service(
    tmp_path: Path, *, csv_path: Path, start: str, prefix: str = "/candlecast", **settings: str
) -> Iterator[Live]:
    """The fake exchange at 60x, `candlecast serve` under `prefix` with 7 days of candles, and
    a stripping proxy in front; yields once a model has made its first forecast."""
    from candlecast.domain import parse_iso_utc
    from tests.fake_exchange.server import FakeExchange

    fake = FakeExchange(
        csv_path=csv_path, start_ms=parse_iso_utc(start), speed=60.0, ws_update_ms=100
    ).start()
    days = {"CANDLECAST_BACKFILL_DAYS": "7", "CANDLECAST_TRAIN_DAYS": "7"}
    try:
        with (
            serve(
                tmp_path,
                binance_url=fake.base_url,
                ws_url=fake.ws_url,
                CANDLECAST_ROOT_PATH=prefix,
                **{**days, **settings},
            ) as server,
            PrefixProxy(server.base_url, prefix) as proxy,
        ):

            def forecasting() -> bool:
                return server.get("/api/forecast").status_code == 200

            wait_for(forecasting, timeout=90, what=f"a model and a forecast\n{server.log()}")
            yield Live(server, proxy)
    finally:
        fake.stop()
