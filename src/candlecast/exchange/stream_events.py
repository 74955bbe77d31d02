"""What the kline stream yields and reports: typed events, health snapshots, stream names."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from candlecast.domain import Candle, CandlecastError, Pair


@dataclass(frozen=True, slots=True)
class KlineClosed:
    """A candle the exchange marked closed (x true): final values, safe to store."""

    candle: Candle

    @property
    def pair(self) -> Pair:
        return Pair(self.candle.symbol, self.candle.interval)


@dataclass(frozen=True, slots=True)
class KlineUpdate:
    """An in-progress candle (x false): for display only, never to be stored."""

    candle: Candle

    @property
    def pair(self) -> Pair:
        return Pair(self.candle.symbol, self.candle.interval)


@dataclass(frozen=True, slots=True)
class PairResume:
    """One pair a reconnect affected: fetch its candles after last_closed_open_time over REST."""

    pair: Pair
    last_closed_open_time: int | None


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A connection was down and is back; every pair in `resumes` may have missed candles.

    Binance never replays missed messages, so the caller fills each listed pair's gap over
    REST. Pairs carried by other connections were not affected and are not listed.
    """

    reason: str
    down_seconds: float
    attempts: int
    resumes: tuple[PairResume, ...] = ()
    connection: int = 0

    @property
    def pairs(self) -> tuple[Pair, ...]:
        return tuple(r.pair for r in self.resumes)

    @property
    def last_closed_open_time(self) -> int | None:
        """The oldest last close among the affected pairs; None if any pair has none yet."""
        times = [r.last_closed_open_time for r in self.resumes]
        if not times or any(t is None for t in times):
            return None
        return min(t for t in times if t is not None)


StreamEvent = KlineClosed | KlineUpdate | Reconnected


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """One WebSocket connection's health (a connection carries up to 1,024 streams)."""

    index: int
    url: str | None = None
    connected: bool = False
    connected_since: float | None = None
    last_message_at: float | None = None
    connects: int = 0
    reconnects: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    streams: int = 0
    pending: int = 0


@dataclass(frozen=True, slots=True)
class PairState:
    """One pair's place in the stream: its connection, subscription and last close."""

    pair: Pair
    connection: int
    subscribed: bool
    last_closed_open_time: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StreamState:
    """Health of the whole stream, for a health endpoint; `connections` and `pairs` detail it.

    `connected` is true when every connection that carries pairs is up. `connects`,
    `reconnects` and `last_error` add up or pick the latest across connections, and
    `last_closed_open_time` is the newest close of any pair (of the only pair, for one).
    """

    url: str
    connected: bool = False
    connected_since: float | None = None
    last_message_at: float | None = None
    last_closed_open_time: int | None = None
    connects: int = 0
    reconnects: int = 0
    last_error: str | None = None
    connections: tuple[ConnectionState, ...] = ()
    pairs: tuple[PairState, ...] = ()

    def pair(self, pair: Pair) -> PairState | None:
        """The named pair's state, or None if the stream does not carry it."""
        return next((p for p in self.pairs if p.pair == pair), None)


class StreamObserver(Protocol):
    """Told about connections and messages (for metrics)."""

    def stream_connected(self, *, reconnect: bool) -> None: ...

    def stream_message(self) -> None: ...


def stream_name(pair: Pair) -> str:
    """Binance's stream name for a pair: lower-case symbol, interval as Binance spells it."""
    return f"{pair.symbol.lower()}@kline_{pair.interval}"


def pair_of_stream(name: str) -> Pair | None:
    """The pair a kline stream name denotes, or None for any other stream."""
    symbol, marker, interval = name.partition("@kline_")
    if not marker:
        return None
    try:
        return Pair.of(symbol, interval)
    except CandlecastError:
        return None


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
