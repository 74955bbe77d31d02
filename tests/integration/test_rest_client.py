"""The REST client against the fake exchange replaying real BTCUSDT 5m candles."""

from __future__ import annotations

import csv
import time
from functools import lru_cache
from pathlib import Path

import pytest

from candlecast.domain import (
    Candle,
    ExchangeUnavailable,
    InvalidInterval,
    InvalidSymbol,
    IPBanned,
    RateLimited,
    RestrictedLocation,
    format_decimal,
    iso_utc,
    parse_iso_utc,
)
from candlecast.exchange.rest import BinanceRest
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.shared_data

STEP = 300_000
DAY = 86_400_000
NOW = "2025-09-27T00:02:30Z"  # mid-candle: the 00:00 candle is still open


@lru_cache(maxsize=1)
def csv_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["open_time"]: row for row in csv.DictReader(handle)}


def assert_exact(candles: list[Candle]) -> None:
    """Each candle equals the CSV row string for string, and there are no gaps or duplicates."""
    rows = csv_rows(shared_data_path(MAIN_CSV))
    opens = [c.open_time for c in candles]
    assert opens == list(range(opens[0], opens[-1] + STEP, STEP))
    for c in candles:
        row = rows[iso_utc(c.open_time)]
        got = [format_decimal(v) for v in (c.open, c.high, c.low, c.close, c.volume)]
        assert got == [row[k] for k in ("open", "high", "low", "close", "volume")], row
        assert c.close_time == c.open_time + STEP - 1


def client_for(fake, **kw) -> BinanceRest:
    options = {"max_retries": 6, "backoff_base": 0.005, "backoff_max": 0.05, **kw}
    return BinanceRest(base_url=fake.base_url, **options)


def test_server_time_ping_and_symbol(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    with client_for(fake) as client:
        assert client.server_time() == parse_iso_utc(NOW)
        client.ping()
        assert client.check_symbol("BTCUSDT").quote_asset == "USDT"
        with pytest.raises(InvalidSymbol, match="NOPEUSDT"):
            client.check_symbol("NOPEUSDT")


def test_90_day_backfill_is_exact_and_closed_only(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    now = parse_iso_utc(NOW)
    with client_for(fake) as client:
        began = time.perf_counter()
        candles = client.closed_klines("BTCUSDT", "5m", start_ms=now - 90 * DAY)
        elapsed = time.perf_counter() - began
        stats = client.stats
    assert len(candles) == 90 * 288 - 1
    assert candles[0].open_time == now - 90 * DAY + STEP - 150_000
    assert candles[-1].open_time == now - 150_000 - STEP  # the open 00:00 candle is left out
    assert_exact(candles)
    assert stats.calls == 1 + 26 and stats.retries == 0
    assert 0 < stats.weight_used <= 2 * 26 + 1
    assert elapsed < 5.0, f"90-day backfill took {elapsed:.2f} s"


def test_raw_klines_serve_the_open_candle_partially(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    with client_for(fake) as client:
        latest = client.klines("BTCUSDT", "5m", limit=3)
        closed = client.closed_klines(
            "BTCUSDT", "5m", start_ms=latest[0].open_time, server_time_ms=client.server_time()
        )
    row = csv_rows(shared_data_path(MAIN_CSV))[iso_utc(latest[-1].open_time)]
    assert latest[-1].open_time == parse_iso_utc("2025-09-27T00:00:00Z")
    assert format_decimal(latest[-1].volume) != row["volume"]  # partial, not the final candle
    assert [c.open_time for c in closed] == [c.open_time for c in latest[:-1]]
    assert_exact(closed)


def test_klines_with_start_time_return_oldest_first(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    start = parse_iso_utc("2025-07-01T00:00:00Z")
    with client_for(fake) as client:
        page = client.klines("BTCUSDT", "5m", start_time=start, limit=5)
    assert [c.open_time for c in page] == [start + i * STEP for i in range(5)]
    assert_exact(page)


def test_combined_faults_still_give_an_exact_backfill(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    fake.set_faults(every_429=3, retry_after_429="0.01", every_5xx=5, every_drop=7)
    now = parse_iso_utc(NOW)
    with client_for(fake) as client:
        candles = client.closed_klines("BTCUSDT", "5m", start_ms=now - 90 * DAY)
        stats = client.stats
    assert_exact(candles)
    assert len(candles) == 90 * 288 - 1
    counters = fake.fault_counters()
    assert counters["limit_429"] > 0 and counters["error_5xx"] > 0 and counters["drop"] > 0
    assert stats.retries == counters["limit_429"] + counters["error_5xx"] + counters["drop"]


def test_malformed_json_is_retried(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    fake.set_faults(every_malformed=2)
    now = parse_iso_utc(NOW)
    with client_for(fake) as client:
        candles = client.closed_klines("BTCUSDT", "5m", start_ms=now - 10 * DAY)
        assert client.stats.retries > 0
    assert_exact(candles)


def test_418_raises_ip_banned_with_until(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    fake.set_faults(every_418=1, retry_after_418="300")
    with client_for(fake) as client, pytest.raises(IPBanned) as caught:
        client.klines("BTCUSDT", "5m")
    assert abs(caught.value.until_ms - (time.time() + 300) * 1000) < 5_000
    assert fake.fault_counters()["requests"] == 1  # no retry after a ban


def test_451_raises_restricted_location(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    fake.set_faults(every_451=1)
    with client_for(fake) as client, pytest.raises(RestrictedLocation, match="data-api"):
        client.server_time()


def test_unknown_symbol_and_interval(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    with client_for(fake) as client:
        with pytest.raises(InvalidSymbol):
            client.klines("NOPEUSDT", "5m")
        with pytest.raises(InvalidInterval):
            client.klines("BTCUSDT", "1h")
        assert client.stats.retries == 0


def test_persistent_429_and_5xx_give_up(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=0)
    fake.set_faults(every_429=1, retry_after_429="0.01")
    with client_for(fake, max_retries=2) as client, pytest.raises(RateLimited):
        client.server_time()
    fake.set_faults(every_429=0, every_5xx=1, status_5xx=503)
    with client_for(fake, max_retries=2) as client, pytest.raises(ExchangeUnavailable):
        client.server_time()


def test_closed_klines_follow_a_running_clock(fake_exchange) -> None:
    fake = fake_exchange(start=NOW, speed=600)  # a 5m candle closes every 0.5 s
    with client_for(fake) as client:
        first = client.closed_klines("BTCUSDT", "5m", start_ms=parse_iso_utc(NOW) - DAY)
        time.sleep(0.6)
        later = client.closed_klines("BTCUSDT", "5m", start_ms=first[-1].open_time + STEP)
    assert later and later[0].open_time == first[-1].open_time + STEP
    assert_exact(first + later)
