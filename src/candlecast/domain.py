"""Candles, intervals, symbols and candlecast's error hierarchy.

Times are integer milliseconds since the Unix epoch, UTC, exactly as Binance sends them.
Prices and volumes are `Decimal`s built from the exchange's strings, so they round-trip exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

MINUTE_MS: Final = 60_000

# Binance's fixed-length kline intervals. "1M" (calendar month) is deliberately absent:
# its length varies, so "open_time + interval" arithmetic does not hold for it.
INTERVAL_MS: Final[dict[str, int]] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
    "3d": 3 * 1440 * MINUTE_MS,
    "1w": 7 * 1440 * MINUTE_MS,
}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SYMBOL_RE: Final = re.compile(r"^[A-Z0-9]{2,20}$")


# Binance's spot base URLs, offered when one of them refuses a location (HTTP 451).
BINANCE_BASE_URLS: Final = (
    "https://data-api.binance.vision, https://api.binance.com or https://api1.binance.com"
    " .. https://api4.binance.com"
)


class CandlecastError(Exception):
    """Base class of every error candlecast raises on purpose."""


class ConfigError(CandlecastError):
    """A setting or argument is invalid."""


class InvalidInterval(ConfigError):
    """An interval code Binance does not know, or one candlecast cannot do arithmetic on."""


class InvalidSymbol(ConfigError):
    """A symbol that is malformed or that the exchange does not list."""


class DataFileError(CandlecastError):
    """A data file that cannot be read; names the file and, where known, the line."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")


class StoreError(CandlecastError):
    """The database refused or failed an operation."""


class ExchangeError(CandlecastError):
    """Base class of errors that come from talking to the exchange."""


class ExchangeUnavailable(ExchangeError):
    """The exchange could not be reached, or kept failing after retries (5xx, timeouts)."""


class ExchangeRejected(ExchangeError):
    """The exchange answered a 4xx with an error code, e.g. -1121 "Invalid symbol."."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"exchange rejected the request (HTTP {status}, code {code}): {message}")


class RateLimited(ExchangeError):
    """HTTP 429: the weight budget is spent; retry after `retry_after` seconds."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message or f"rate limited by the exchange; retry after {retry_after:g} s")


class IPBanned(ExchangeError):
    """HTTP 418: the exchange banned this IP until `until_ms` (UTC epoch ms)."""

    def __init__(self, until_ms: int) -> None:
        self.until_ms = until_ms
        super().__init__(f"the exchange banned this IP until {iso_utc(until_ms)}; stop sending")


class RestrictedLocation(ExchangeError):
    """HTTP 451: the exchange refuses service to this location."""


class ExchangeBlocked(ExchangeError):
    """HTTP 403: a WAF block."""


class NotFound(CandlecastError):
    """Something asked for does not exist (a job run, a model)."""


class PairNotTracked(NotFound):
    """A symbol and interval this service does not follow: not found, never an outage."""


class JobAlreadyRunning(CandlecastError):
    """The job asked for is already running (here or in another replica)."""


def interval_ms(interval: str) -> int:
    """Returns the length of an interval in milliseconds, or raises InvalidInterval."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        known = " ".join(INTERVAL_MS)
        raise InvalidInterval(
            f"unknown interval {interval!r}; use one of: {known} (case-sensitive)"
        ) from None


def validate_interval(interval: str) -> str:
    """Returns the interval unchanged if candlecast supports it, else raises InvalidInterval."""
    interval_ms(interval)
    return interval


def validate_symbol(symbol: str) -> str:
    """Returns the symbol upper-cased if it is well-formed, else raises InvalidSymbol."""
    candidate = symbol.strip().upper()
    if not _SYMBOL_RE.match(candidate):
        raise InvalidSymbol(
            f"malformed symbol {symbol!r}; expected 2-20 letters or digits such as BTCUSDT"
        )
    return candidate


class PairAlreadyFollowed(CandlecastError):
    """A pair asked to be added is already followed."""


class UnknownPair(CandlecastError):
    """The exchange does not list this symbol, or not at this interval."""


@dataclass(frozen=True, order=True, slots=True)
class Pair:
    """A validated symbol and interval: the unit everything per-pair is keyed by."""

    symbol: str
    interval: str

    @classmethod
    def of(cls, symbol: str, interval: str) -> Pair:
        """Validates both parts (upper-casing the symbol), naming the bad one."""
        return cls(validate_symbol(symbol), validate_interval(interval))

    @classmethod
    def parse(cls, text: str) -> Pair:
        """`SYMBOL:INTERVAL` (for example `ETHUSDT:5m`) to a Pair, or a ConfigError."""
        symbol, colon, interval = text.strip().partition(":")
        if not colon or not symbol or not interval:
            raise ConfigError(f"{text!r} is not SYMBOL:INTERVAL (for example BTCUSDT:5m)")
        return cls.of(symbol, interval.strip())

    def __str__(self) -> str:
        return f"{self.symbol}:{self.interval}"


def parse_pairs(text: str) -> tuple[Pair, ...]:
    """A comma list of `SYMBOL:INTERVAL` to distinct pairs in the given order."""
    pairs: list[Pair] = []
    for item in text.split(","):
        if not item.strip():
            continue
        pair = Pair.parse(item)
        if pair not in pairs:
            pairs.append(pair)
    if not pairs:
        raise ConfigError(f"{text!r} names no pair; expected SYMBOL:INTERVAL[,SYMBOL:INTERVAL...]")
    return tuple(pairs)


def close_time_of(open_time: int, interval: str) -> int:
    """Returns a kline's close_time: open_time + interval - 1 ms."""
    return open_time + interval_ms(interval) - 1


def floor_open_time(ts_ms: int, interval: str) -> int:
    """Returns the open_time of the candle that contains ts_ms (intervals up to 1d)."""
    step = interval_ms(interval)
    return ts_ms - ts_ms % step


def iso_utc(ts_ms: int) -> str:
    """Formats epoch milliseconds as ISO 8601 UTC with a Z suffix."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    if ts_ms % 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> int:
    """Parses ISO 8601 (naive means UTC) or epoch milliseconds into epoch milliseconds."""
    raw = text.strip()
    if re.fullmatch(r"-?\d{9,}", raw):
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time or epoch milliseconds: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Integer arithmetic: timestamp() * 1000 is a float and can lose the last millisecond.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def format_decimal(value: Decimal | None) -> str:
    """Formats a Decimal without exponent notation, keeping the exchange's digits."""
    if value is None:
        return ""
    return format(value, "f")


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed (or, for display only, in-progress) kline of one symbol and interval."""

    symbol: str
    interval: str
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int
    quote_volume: Decimal | None = None
    trades: int | None = None
    taker_buy_base: Decimal | None = None
    taker_buy_quote: Decimal | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """The candle's identity: (symbol, interval, open_time)."""
        return (self.symbol, self.interval, self.open_time)

    def has_sane_values(self) -> bool:
        """Prices and volume are finite and non-negative (Decimal also accepts "NaN", "-1")."""
        values = (self.open, self.high, self.low, self.close, self.volume)
        return all(value.is_finite() and value >= 0 for value in values)

    def is_closed_at(self, server_time_ms: int) -> bool:
        """True once the exchange's clock has passed this candle's close_time."""
        return server_time_ms > self.close_time
