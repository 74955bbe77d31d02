"""Reading Binance REST responses: kline arrays into Candles, exchangeInfo into SymbolInfo,
and refusals into candlecast's errors."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import httpx

from candlecast.domain import (
    BINANCE_BASE_URLS,
    Candle,
    ExchangeBlocked,
    ExchangeRejected,
    InvalidInterval,
    InvalidSymbol,
    RestrictedLocation,
)


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """The exchangeInfo fields candlecast cares about."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str


def parse_kline(row: Any, *, symbol: str, interval: str) -> Candle:
    """Parses one 12-field kline array, keeping prices exactly as the exchange wrote them."""
    if not isinstance(row, list) or len(row) < 11:
        raise ValueError(f"a kline must be an array of 12 fields, got {row!r:.200}")
    dec = Decimal
    try:
        # Positional and without per-field checks: this runs 1,000 times per page.
        candle = Candle(
            symbol,
            interval,
            int(row[0]),
            dec(row[1]),
            dec(row[2]),
            dec(row[3]),
            dec(row[4]),
            dec(row[5]),
            int(row[6]),
            dec(row[7]),
            int(row[8]),
            dec(row[9]),
            dec(row[10]),
        )
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"malformed kline {row!r:.200}: {exc}") from exc
    if not candle.has_sane_values():
        raise ValueError(f"malformed kline {row!r:.200}: a price or volume is NaN or negative")
    return candle


def parse_klines(payload: Any, *, symbol: str, interval: str) -> list[Candle]:
    """Parses a klines response body."""
    if not isinstance(payload, list):
        raise ValueError(f"klines response is not an array: {payload!r:.200}")
    return [parse_kline(row, symbol=symbol, interval=interval) for row in payload]


def retry_after(response: httpx.Response, default: float) -> float:
    """The answer's Retry-After in seconds, or `default` when it gives none."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return default


def _error_body(response: httpx.Response) -> tuple[int | None, str]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, dict):
        code = body.get("code")
        return (code if isinstance(code, int) else None), str(body.get("msg", body))
    return None, str(body)[:200]


def raise_rejected(response: httpx.Response, *, base_url: str, params: dict[str, Any]) -> NoReturn:
    """Raises the candlecast error for a refusal no retry can cure (HTTP 403, 451 and other
    4xx answers; 418, 429 and 5xx are the client's to handle)."""
    status = response.status_code
    if status == 451:
        raise RestrictedLocation(
            f"{base_url} refuses service from this location (HTTP 451: restricted "
            f"location, e.g. the United States). Set CANDLECAST_BINANCE_URL to another "
            f"Binance endpoint reachable from here: {BINANCE_BASE_URLS}. Binance.US "
            "(https://api.binance.us) is a separate market: never mix its candles in."
        )
    if status == 403:
        raise ExchangeBlocked(
            f"{base_url} blocked the request (HTTP 403, WAF); slow down or change IP"
        )
    code, msg = _error_body(response)
    rejected = ExchangeRejected(status, code, msg)
    if code == -1121:
        raise InvalidSymbol(
            f"{base_url} does not know symbol {params.get('symbol')!r}: {msg}"
        ) from rejected
    if code == -1120:
        raise InvalidInterval(
            f"{base_url} rejected interval {params.get('interval')!r}: {msg}"
        ) from rejected
    raise rejected
