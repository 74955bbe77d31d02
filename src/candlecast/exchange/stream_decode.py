"""Classifying raw WebSocket messages, and each pair's duplicate filter (no network here)."""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from candlecast.domain import Pair
from candlecast.exchange.stream_events import KlineClosed, KlineUpdate, stream_name

log = logging.getLogger(__name__)

_RECENT_CLOSES = 256


@dataclass(frozen=True, slots=True)
class KlineMessage:
    """A kline event; `stream` is the combined-stream envelope's name (None on a raw stream)."""

    stream: str | None
    payload: dict[str, Any]

    def named_stream(self) -> str | None:
        """The stream this event belongs to: the envelope's, else its own symbol and interval."""
        if self.stream is not None:
            return self.stream
        k = self.payload.get("k")
        if not isinstance(k, dict):
            return None
        symbol, interval = k.get("s", self.payload.get("s")), k.get("i")
        if not isinstance(symbol, str) or not isinstance(interval, str):
            return None
        return f"{symbol.lower()}@kline_{interval}"


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to a SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS request (`id` echoes ours)."""

    id: Any
    result: Any
    error: str | None


@dataclass(frozen=True, slots=True)
class ServerShutdown:
    """Binance's notice that the server is going away: reconnect now, not after a timeout."""


Message = KlineMessage | Answer | ServerShutdown


def classify(raw: str | bytes) -> Message | None:
    """Sorts one raw message; None for anything malformed or of no interest (logged, skipped)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        log.warning("kline stream sent a malformed message: %.200r", raw)
        return None
    if not isinstance(payload, dict):
        return None
    if "id" in payload and ("result" in payload or "error" in payload or "code" in payload):
        return Answer(id=payload.get("id"), result=payload.get("result"), error=_error(payload))
    if "error" in payload or ("code" in payload and "msg" in payload):
        # An error without our id (Binance omits it for unparseable requests): report it all
        # the same, so it reaches the logs and the state.
        return Answer(id=None, result=None, error=_error(payload))
    stream = payload.get("stream")
    if isinstance(payload.get("data"), dict):
        payload = payload["data"]  # combined-stream envelope
    kind = payload.get("e")
    if kind == "serverShutdown":
        return ServerShutdown()
    if kind != "kline":
        return None
    return KlineMessage(stream=stream if isinstance(stream, str) else None, payload=payload)


def _error(payload: dict[str, Any]) -> str | None:
    """Binance's error shapes: {"code": 2, "msg": ...} or {"error": {"code": .., "msg": ..}}."""
    error = payload.get("error", payload if "msg" in payload else None)
    if error is None:
        return None
    if isinstance(error, dict):
        return f"code {error.get('code')}: {error.get('msg')}"
    return str(error)


class PairTracker:
    """One pair's closes seen so far: repeated closes are dropped, late (older) ones kept."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.name = stream_name(pair)
        self.last_closed_open_time: int | None = None
        # The point resumed after and the recent closes already yielded: an older close that
        # arrives late (out of order) is still new, a repeated one is not.
        self._floor: int | None = None
        self._yielded: deque[int] = deque(maxlen=_RECENT_CLOSES)

    def resume_after(self, open_time: int | None) -> None:
        """Skips closed candles at or before open_time (e.g. the newest one already stored)."""
        self.last_closed_open_time = open_time
        self._floor = open_time

    def accept(self, event: KlineClosed | KlineUpdate) -> KlineClosed | KlineUpdate | None:
        """The event if it is news, else None (a repeated close, an update of a closed candle)."""
        open_time = event.candle.open_time
        last = self.last_closed_open_time
        if isinstance(event, KlineUpdate):
            return None if last is not None and open_time <= last else event
        if open_time in self._yielded or (self._floor is not None and open_time <= self._floor):
            return None
        self._yielded.append(open_time)
        if last is None or open_time > last:
            self.last_closed_open_time = open_time
        return event
