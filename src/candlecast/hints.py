"""What a user can do about an exchange failure: the words shown in the log and the banner."""

from __future__ import annotations

from candlecast.domain import (
    BINANCE_BASE_URLS,
    ExchangeBlocked,
    ExchangeError,
    IPBanned,
    RateLimited,
    RestrictedLocation,
    iso_utc,
)

# A failed start-up is retried this often at most, not at the next 5-minute ingest tick.
START_UP_RETRY_MAX_SECONDS = 30.0


def exchange_hint(error: ExchangeError, *, base_url: str) -> str:
    """One actionable sentence for this failure."""
    if isinstance(error, RestrictedLocation):
        return (
            f"{base_url} refuses this location (HTTP 451). Set CANDLECAST_BINANCE_URL to "
            f"another Binance base URL ({BINANCE_BASE_URLS}); Binance.US is a separate market "
            "and must not be mixed in."
        )
    if isinstance(error, IPBanned):
        return (
            f"The exchange banned this IP until {iso_utc(error.until_ms)} (HTTP 418). candlecast "
            "sends nothing until then; check that no other tool on this host floods the API."
        )
    if isinstance(error, RateLimited):
        return (
            "The exchange rate-limited this IP (HTTP 429). candlecast waits as told; lower "
            "CANDLECAST_WEIGHT_BUDGET_PER_MINUTE if other tools share this IP."
        )
    if isinstance(error, ExchangeBlocked):
        return f"{base_url} blocked the request (HTTP 403, WAF). Try another base URL or host."
    return (
        f"Check this host's network connection and that CANDLECAST_BINANCE_URL ({base_url}) is "
        f"reachable from here; if Binance answers 451 from your location, use {BINANCE_BASE_URLS}."
    )


def retry_delay_seconds(error: ExchangeError, *, attempt: int, host_now_ms: int) -> float:
    """How long to wait before retrying a failed start-up: as told for bans and rate limits,
    otherwise an exponential backoff that never exceeds START_UP_RETRY_MAX_SECONDS."""
    if isinstance(error, IPBanned):
        return max(1.0, (error.until_ms - host_now_ms) / 1000)
    if isinstance(error, RateLimited):
        return max(1.0, error.retry_after)
    return min(START_UP_RETRY_MAX_SECONDS, 2.0 * 2.0**attempt)
