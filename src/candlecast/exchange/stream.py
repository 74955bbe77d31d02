"""Binance kline WebSocket client: closed candles, live updates, reconnects with gap hints."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect

from candlecast.config import Settings
from candlecast.domain import Candle, validate_interval, validate_symbol

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE_SECONDS = 23.5 * 3600
_RECENT_CLOSES = 256


@dataclass(frozen=True, slots=True)
class KlineClosed:
    """A candle the exchange marked closed (x true): final values, safe to store."""

    candle: Candle


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    """An in-progress candle (x false): for display only, never to be stored."""

    candle: Candle


@dataclass(frozen=True, slots=True)
class Reconnected:
    """The stream was down and is back; fetch candles after last_closed_open_time over REST."""

    reason: str
    down_seconds: float
    last_closed_open_time: int | None
    attempts: int


StreamEvent = KlineClosed | KlineUpdate | Reconnected


@dataclass(frozen=True, slots=True)
class StreamState:
    """Connection health, for a health endpoint."""

    url: str
    connected: bool = False
    connected_since: float | None = None
    last_message_at: float | None = None
    last_closed_open_time: int | None = None
    connects: int = 0
    reconnects: int = 0
    last_error: str | None = None


class StreamObserver(Protocol):
    """Told about connections and messages (for metrics)."""

    def stream_connected(self, *, reconnect: bool) -> None: ...

    def stream_message(self) -> None: ...


class _Disconnect(Exception):
    """Ends the current connection; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_kline_event(
    payload: dict[str, Any], *, symbol: str, interval: str
) -> KlineClosed | KlineUpdate:
    """Turns a kline event's `k` object into a typed event, keeping prices exact."""
    k = payload["k"]
    candle = Candle(
        symbol=symbol,
        interval=interval,
        open_time=int(k["t"]),
        open=Decimal(k["o"]),
        high=Decimal(k["h"]),
        low=Decimal(k["l"]),
        close=Decimal(k["c"]),
        volume=Decimal(k["v"]),
        close_time=int(k["T"]),
        quote_volume=Decimal(k["q"]) if "q" in k else None,
        trades=int(k["n"]) if "n" in k else None,
        taker_buy_base=Decimal(k["V"]) if "V" in k else None,
        taker_buy_quote=Decimal(k["Q"]) if "Q" in k else None,
    )
    if not candle.has_sane_values():
        raise ValueError(f"a price or volume is NaN or negative: {k!r:.200}")
    return KlineClosed(candle) if k.get("x") is True else KlineUpdate(candle)


class KlineStream:
    """Async iterator of kline events for one symbol and interval, reconnecting forever."""

    def __init__(
        self,
        *,
        ws_base_url: str,
        symbol: str,
        interval: str,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        idle_timeout_seconds: float = 60.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        open_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        observer: StreamObserver | None = None,
    ) -> None:
        self.symbol = validate_symbol(symbol)
        self.interval = validate_interval(interval)
        self.url = f"{ws_base_url.rstrip('/')}/ws/{self.symbol.lower()}@kline_{self.interval}"
        self._max_age = max_age_seconds
        self._idle_timeout = idle_timeout_seconds
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._open_timeout = open_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._state = StreamState(url=self.url)
        self._ws: ClientConnection | None = None
        self._closing = False
        self._observer = observer
        # Closed candles already yielded (recent ones) and the point resumed after: an older
        # close that arrives late (out of order) is still new, a repeated one is not.
        self._floor: int | None = None
        self._yielded: deque[int] = deque(maxlen=_RECENT_CLOSES)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> KlineStream:
        """Builds a stream for the configured symbol and interval; keyword overrides win."""
        options: dict[str, Any] = {
            "ws_base_url": settings.binance_ws_url,
            "symbol": settings.symbol,
            "interval": settings.interval,
        }
        return cls(**{**options, **overrides})

    @property
    def state(self) -> StreamState:
        """A snapshot of the connection's health."""
        return self._state

    def resume_after(self, open_time: int | None) -> None:
        """Skips closed candles at or before open_time (e.g. the newest one already stored)."""
        self._state = replace(self._state, last_closed_open_time=open_time)
        self._floor = open_time

    async def close(self) -> None:
        """Stops the iterator at its next step and closes the connection."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[StreamEvent]:
        """Yields events until close(); a Reconnected event follows every reconnect."""
        failures = 0
        down_since: float | None = None
        reason = "start"
        while not self._closing:
            try:
                ws = await connect(
                    self.url,
                    ping_interval=self._ping_interval,
                    ping_timeout=self._ping_timeout,
                    open_timeout=self._open_timeout,
                    close_timeout=2.0,
                )
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                failures += 1
                self._note_error(f"connect failed: {type(exc).__name__}: {exc}")
                await self._sleep(self._backoff(failures))
                continue
            self._ws = ws
            opened = time.monotonic()
            s = self._state
            self._state = replace(
                s, connected=True, connected_since=time.time(), connects=s.connects + 1,
                reconnects=s.reconnects + (1 if down_since is not None else 0),
            )  # fmt: skip
            if self._observer is not None:
                self._observer.stream_connected(reconnect=down_since is not None)
            if down_since is not None:
                yield Reconnected(
                    reason=reason,
                    down_seconds=time.monotonic() - down_since,
                    last_closed_open_time=self._state.last_closed_open_time,
                    attempts=failures + 1,
                )
            try:
                async for event in self._receive(ws, opened):
                    failures = 0
                    yield event
                reason = "closed"
            except _Disconnect as stop:
                reason = stop.reason
            finally:
                self._ws = None
                self._state = replace(self._state, connected=False)
                await ws.close()
            down_since = time.monotonic()
            if self._closing:
                return
            log.info("kline stream %s disconnected (%s); reconnecting", self.url, reason)
            # A planned renewal reconnects at once; failures back off with jitter.
            if reason not in {"max_age", "server_shutdown"}:
                failures += 1
                await self._sleep(self._backoff(failures))

    async def _receive(self, ws: ClientConnection, opened: float) -> AsyncIterator[StreamEvent]:
        """Yields events from one connection; raises _Disconnect when it must be replaced."""
        while True:
            remaining_age = self._max_age - (time.monotonic() - opened)
            if remaining_age <= 0:
                raise _Disconnect("max_age")
            try:
                raw = await asyncio.wait_for(ws.recv(), min(self._idle_timeout, remaining_age))
            except TimeoutError:
                if time.monotonic() - opened >= self._max_age:
                    raise _Disconnect("max_age") from None
                raise _Disconnect("idle") from None
            except websockets.ConnectionClosed as exc:
                if self._closing:
                    return
                self._note_error(f"connection closed: {exc}")
                raise _Disconnect("dropped") from None
            self._state = replace(self._state, last_message_at=time.time())
            if self._observer is not None:
                self._observer.stream_message()
            event = self._decode(raw)
            if event is not None:
                yield event

    def _decode(self, raw: str | bytes) -> KlineClosed | KlineUpdate | None:
        """Parses one message; returns None for messages to skip (duplicates, other events)."""
        try:
            payload = json.loads(raw)
        except ValueError:
            log.warning("kline stream %s sent a malformed message: %.200r", self.url, raw)
            return None
        if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
            payload = payload["data"]  # combined-stream envelope
        if not isinstance(payload, dict):
            return None
        kind = payload.get("e")
        if kind == "serverShutdown":
            raise _Disconnect("server_shutdown")
        if kind != "kline":
            return None
        try:
            event = parse_kline_event(payload, symbol=self.symbol, interval=self.interval)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            log.warning("kline stream %s: unreadable kline %.200r (%s)", self.url, payload, exc)
            return None
        open_time = event.candle.open_time
        last = self._state.last_closed_open_time
        if isinstance(event, KlineUpdate):
            return None if last is not None and open_time <= last else event
        if open_time in self._yielded or (self._floor is not None and open_time <= self._floor):
            return None  # already yielded closed, e.g. repeated after a reconnect
        self._yielded.append(open_time)
        if last is None or open_time > last:
            self._state = replace(self._state, last_closed_open_time=open_time)
        return event

    def _backoff(self, failures: int) -> float:
        """Exponential backoff, capped, with jitter: a random delay in [cap/2, cap]."""
        cap = min(self._backoff_max, self._backoff_base * 2.0 ** max(0, failures - 1))
        return cap * (0.5 + self._rng.random() / 2)

    def _note_error(self, message: str) -> None:
        log.warning("kline stream %s: %s", self.url, message)
        self._state = replace(self._state, last_error=message)


__all__ = [
    "KlineClosed",
    "KlineStream",
    "KlineUpdate",
    "Reconnected",
    "StreamEvent",
    "StreamState",
    "parse_kline_event",
]
