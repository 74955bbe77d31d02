"""One kline WebSocket connection carrying up to 1,024 pairs' streams, reconnecting forever."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

import websockets
from websockets.asyncio.client import ClientConnection, connect

from candlecast.domain import Pair
from candlecast.exchange.stream_decode import Answer, PairTracker, ServerShutdown, classify
from candlecast.exchange.stream_events import (
    ConnectionState,
    KlineClosed,
    KlineUpdate,
    PairResume,
    Reconnected,
    StreamEvent,
    StreamObserver,
    parse_kline_event,
)
from candlecast.exchange.stream_limits import TokenBucket, control_limiter

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_SECONDS = 23.5 * 3600


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Settings every connection of a stream shares."""

    ws_base_url: str
    combined: bool = True
    max_streams_per_connection: int = 1024
    # Streams named in the connect URL; the rest follow as SUBSCRIBE messages. A URL naming
    # 1,024 streams would be ~20 kB, past what proxies commonly accept.
    max_url_streams: int = 200
    max_params_per_message: int = 200
    messages_per_second: float = 4.0
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    idle_timeout_seconds: float = 60.0
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    open_timeout: float = 10.0
    backoff_base: float = 0.5
    backoff_max: float = 60.0


class Disconnect(Exception):
    """Ends the current connection; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection:
    """Keeps one WebSocket subscribed to `desired` streams and hands their events to `emit`.

    Every method runs on the stream's event loop; the owner serialises changes onto it.
    """

    def __init__(
        self,
        index: int,
        *,
        options: StreamOptions,
        trackers: dict[Pair, PairTracker],
        emit: Callable[[StreamEvent], Awaitable[None]],
        connect_limiter: TokenBucket,
        next_id: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random,
        observer: StreamObserver | None,
    ) -> None:
        self.index = index
        self._options = options
        self._trackers = trackers
        self._emit = emit
        self._connect_limiter = connect_limiter
        self._next_id = next_id
        self._sleep = sleep
        self._rng = rng
        self._observer = observer
        self.desired: dict[str, Pair] = {}  # stream name -> pair, in the order added
        self.subscribed: set[str] = set()  # asked of the live connection (URL or SUBSCRIBE)
        self.rejected: dict[str, str] = {}  # refused by the server: not asked again until re-added
        self._requests: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._changed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._closing = False
        self._failures = 0
        self.state = ConnectionState(index=index, url=self.url())

    # --- The pair set -------------------------------------------------------------------

    def add(self, name: str, pair: Pair) -> None:
        self.desired[name] = pair
        self.rejected.pop(name, None)
        self._changed.set()

    def remove(self, name: str) -> None:
        self.desired.pop(name, None)
        self.rejected.pop(name, None)
        self._changed.set()

    def url(self) -> str:
        """The connect URL for the current pair set (the first max_url_streams of it)."""
        base = self._options.ws_base_url.rstrip("/")
        names = self._url_streams()
        if not self._options.combined:
            return f"{base}/ws/{names[0] if names else ''}"
        return f"{base}/stream?streams={quote('/'.join(names), safe='/@_')}"

    def _url_streams(self) -> list[str]:
        wanted = [n for n in self.desired if n not in self.rejected]
        # A raw (/ws/) URL names one stream; a combined URL names up to max_url_streams.
        return wanted[: 1 if not self._options.combined else self._options.max_url_streams]

    def snapshot(self) -> ConnectionState:
        pending = sum(1 for n in self.desired if n not in self.subscribed)
        url = self.state.url if self.state.connected else self.url()
        return replace(self.state, url=url, streams=len(self.desired), pending=pending)

    # --- The connection loop ------------------------------------------------------------

    async def run(self) -> None:
        """Connects, receives and reconnects until close(); a Reconnected event after each drop."""
        self._closing = False
        down_since: float | None = None
        reason = "start"
        while not self._closing:
            if not self.desired:
                # A combined URL needs a stream; with none to carry, wait for one to be added.
                down_since, self._failures = None, 0
                self._changed.clear()
                await self._changed.wait()
                continue
            await self._connect_limiter.acquire()
            if self._closing or not self.desired:
                continue
            initial = self._url_streams()
            url = self.url()
            try:
                ws = await connect(
                    url,
                    ping_interval=self._options.ping_interval,
                    ping_timeout=self._options.ping_timeout,
                    open_timeout=self._options.open_timeout,
                    close_timeout=2.0,
                )
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                self._failures += 1
                self._note_error(f"connect failed: {type(exc).__name__}: {exc}")
                await self._sleep(self._backoff(self._failures))
                continue
            self._ws = ws
            self.subscribed = set(initial)
            self._requests.clear()
            opened = time.monotonic()
            s = self.state
            self.state = replace(
                s,
                url=url,
                connected=True,
                connected_since=time.time(),
                connects=s.connects + 1,
                reconnects=s.reconnects + (1 if down_since is not None else 0),
            )
            if self._observer is not None:
                self._observer.stream_connected(reconnect=down_since is not None)
            if down_since is not None:
                await self._emit(self._reconnected(reason, down_since))
            self._changed.set()  # the sender subscribes whatever the URL could not name
            sender = asyncio.create_task(self._send_changes(ws))
            try:
                await self._receive(ws, opened)
                reason = "closed"
            except Disconnect as stop:
                reason = stop.reason
            finally:
                sender.cancel()
                self._ws = None
                self.state = replace(self.state, connected=False)
                await ws.close()
            if self._closing:
                return
            if not self.desired:
                continue  # emptied on purpose: nothing was missed
            down_since = time.monotonic()
            log.info("kline stream %s disconnected (%s); reconnecting", url, reason)
            # A planned renewal reconnects at once; failures back off with jitter.
            if reason not in {"max_age", "server_shutdown"}:
                self._failures += 1
                await self._sleep(self._backoff(self._failures))

    async def close(self) -> None:
        self._closing = True
        self._changed.set()
        if self._ws is not None:
            await self._ws.close()

    def _reconnected(self, reason: str, down_since: float) -> Reconnected:
        resumes = tuple(
            PairResume(pair, self._trackers[pair].last_closed_open_time)
            for pair in self.desired.values()
            if pair in self._trackers
        )
        return Reconnected(
            reason=reason,
            down_seconds=time.monotonic() - down_since,
            attempts=self._failures + 1,
            resumes=resumes,
            connection=self.index,
        )

    async def _receive(self, ws: ClientConnection, opened: float) -> None:
        """Emits events from one connection; raises Disconnect when it must be replaced."""
        max_age = self._options.max_age_seconds
        while True:
            remaining_age = max_age - (time.monotonic() - opened)
            if remaining_age <= 0:
                raise Disconnect("max_age")
            wait = min(self._options.idle_timeout_seconds, remaining_age)
            try:
                raw = await asyncio.wait_for(ws.recv(), wait)
            except TimeoutError:
                if time.monotonic() - opened >= max_age:
                    raise Disconnect("max_age") from None
                raise Disconnect("idle") from None
            except websockets.ConnectionClosed as exc:
                if self._closing or not self.desired:
                    return
                self._note_error(f"connection closed: {exc}")
                raise Disconnect("dropped") from None
            self.state = replace(self.state, last_message_at=time.time())
            self._failures = 0
            if self._observer is not None:
                self._observer.stream_message()
            event = self.decode(raw)
            if event is not None:
                await self._emit(event)

    # --- Messages -----------------------------------------------------------------------

    def decode(self, raw: str | bytes) -> KlineClosed | KlineUpdate | None:
        """Parses one message; None for messages to skip (duplicates, answers, other events)."""
        message = classify(raw)
        if isinstance(message, ServerShutdown):
            raise Disconnect("server_shutdown")
        if isinstance(message, Answer):
            self._on_answer(message)
            return None
        if message is None:
            return None
        tracker = self._route(message.named_stream(), raw_stream=message.stream is None)
        if tracker is None:
            return None
        pair = tracker.pair
        try:
            event = parse_kline_event(message.payload, symbol=pair.symbol, interval=pair.interval)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            log.warning("kline stream %s: unreadable kline %.200r (%s)", pair, message.payload, exc)
            return None
        return tracker.accept(event)

    def _route(self, name: str | None, *, raw_stream: bool) -> PairTracker | None:
        """The tracker of the pair a message belongs to; None for streams no longer wanted."""
        pair = self.desired.get(name) if name is not None else None
        if pair is None and raw_stream and not self._options.combined and len(self.desired) == 1:
            # A raw single-stream connection carries one pair whatever the payload says.
            pair = next(iter(self.desired.values()))
        return self._trackers.get(pair) if pair is not None else None

    def _on_answer(self, answer: Answer) -> None:
        request = self._requests.pop(answer.id, None) if isinstance(answer.id, int) else None
        if answer.error is None:
            return
        if request is None:
            self._note_error(f"the server refused a request: {answer.error}")
            return
        method, params = request
        self._note_error(f"{method} {', '.join(params)} refused: {answer.error}")
        if method != "SUBSCRIBE":
            return
        for name in params:
            self.subscribed.discard(name)
            if name in self.desired:
                self.rejected[name] = answer.error

    async def _send_changes(self, ws: ClientConnection) -> None:
        """Sends SUBSCRIBE/UNSUBSCRIBE for changes to `desired`, a few messages per second.

        Changes made while a message waits for its turn join that message, so a burst of
        add/remove calls costs a few messages, never one each.
        """
        limiter = control_limiter(self._options.messages_per_second)
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                while self._diff() != ([], []):
                    await limiter.acquire()
                    if not self.desired:
                        await ws.close()  # the last pair left: nothing to carry
                        return
                    drop, add = self._diff()
                    method, names = ("UNSUBSCRIBE", drop) if drop else ("SUBSCRIBE", add)
                    if not names:
                        continue
                    batch = tuple(names[: self._options.max_params_per_message])
                    request_id = self._next_id()
                    self._requests[request_id] = (method, batch)
                    body = {"method": method, "params": list(batch), "id": request_id}
                    await ws.send(json.dumps(body))
                    if method == "SUBSCRIBE":
                        self.subscribed.update(batch)
                    else:
                        self.subscribed.difference_update(batch)
        except websockets.ConnectionClosed:
            return  # the receiver notices and reconnects

    def _diff(self) -> tuple[list[str], list[str]]:
        drop = sorted(n for n in self.subscribed if n not in self.desired)
        add = [n for n in self.desired if n not in self.subscribed and n not in self.rejected]
        return drop, add

    def _backoff(self, failures: int) -> float:
        """Exponential backoff, capped, with jitter: a random delay in [cap/2, cap]."""
        o = self._options
        cap = min(o.backoff_max, o.backoff_base * 2.0 ** max(0, failures - 1))
        return cap * (0.5 + self._rng.random() / 2)

    def _note_error(self, message: str) -> None:
        log.warning("kline stream %s: %s", self.state.url, message)
        self.state = replace(self.state, last_error=message, last_error_at=time.time())
