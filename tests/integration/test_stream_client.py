"""The kline WebSocket client against the fake exchange, with a fast virtual clock."""

from __future__ import annotations

import asyncio
import csv
from functools import lru_cache
from typing import Any

import pytest

from candlecast.domain import Candle, format_decimal, iso_utc, parse_iso_utc
from candlecast.exchange.rest import BinanceRest
from candlecast.exchange.stream import KlineClosed, KlineStream, KlineUpdate, Reconnected
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.shared_data

STEP = 300_000
START = "2025-09-27T00:04:00Z"  # one virtual minute before a close
SPEED = 300  # a 5m candle closes every real second


@lru_cache(maxsize=1)
def final_rows() -> dict[str, dict[str, str]]:
    with shared_data_path(MAIN_CSV).open(newline="") as handle:
        return {row["open_time"]: row for row in csv.DictReader(handle)}


def values(c: Candle) -> list[str]:
    return [format_decimal(v) for v in (c.open, c.high, c.low, c.close, c.volume)]


def csv_values(open_time: int) -> list[str]:
    row = final_rows()[iso_utc(open_time)]
    return [row[k] for k in ("open", "high", "low", "close", "volume")]


def make_stream(fake, **kw) -> KlineStream:
    options = {"backoff_base": 0.05, "backoff_max": 0.2, "open_timeout": 2.0, **kw}
    return KlineStream(ws_base_url=fake.ws_url, symbol="BTCUSDT", interval="5m", **options)


async def collect(stream: KlineStream, closes: int, on_event=None) -> list[Any]:
    """Events until `closes` closed candles arrived (or 15 s passed)."""
    events: list[Any] = []
    async with asyncio.timeout(15):
        async for event in stream:
            events.append(event)
            if on_event is not None:
                await on_event(event, events)
            if sum(isinstance(e, KlineClosed) for e in events) >= closes:
                break
    await stream.close()
    return events


async def test_closed_candles_have_final_values(fake_exchange) -> None:
    # The server pings every 0.2 s and drops clients that do not pong: none may be dropped.
    fake = fake_exchange(start=START, speed=SPEED, ws_update_ms=50, ws_heartbeat_s=0.2)
    stream = make_stream(fake)
    events = await collect(stream, closes=3)
    closed = [e.candle for e in events if isinstance(e, KlineClosed)]
    first = parse_iso_utc("2025-09-27T00:00:00Z")
    assert [c.open_time for c in closed] == [first, first + STEP, first + 2 * STEP]
    for c in closed:
        assert values(c) == csv_values(c.open_time)
    updates = [e.candle for e in events if isinstance(e, KlineUpdate)]
    assert updates and all(u.open_time >= first for u in updates)
    assert any(values(u) != csv_values(u.open_time) for u in updates)  # partial values
    assert not any(isinstance(e, Reconnected) for e in events)
    assert stream.state.connects == 1 and stream.state.last_closed_open_time == closed[-1].open_time


async def test_drop_mid_candle_reconnects_and_the_gap_can_be_filled(fake_exchange) -> None:
    fake = fake_exchange(start=START, speed=SPEED, ws_update_ms=50)
    stream = make_stream(fake)
    dropped = False

    async def drop_after_first_close(event, events) -> None:
        nonlocal dropped
        if isinstance(event, KlineClosed) and not dropped:
            assert stream.state.connected
            dropped = True
            await asyncio.sleep(0.4)  # mid-candle
            await asyncio.to_thread(fake.drop_websockets)

    events = await collect(stream, closes=3, on_event=drop_after_first_close)
    reconnects = [e for e in events if isinstance(e, Reconnected)]
    assert len(reconnects) == 1 and reconnects[0].reason == "dropped"
    closed = [e.candle for e in events if isinstance(e, KlineClosed)]
    opens = [c.open_time for c in closed]
    assert len(opens) == len(set(opens)) and opens == sorted(opens)
    assert reconnects[0].last_closed_open_time == opens[0]
    for c in closed:
        assert values(c) == csv_values(c.open_time)
    # What a caller does with the Reconnected event: fetch the gap over REST.
    with BinanceRest(base_url=fake.base_url) as rest:
        gap = rest.closed_klines("BTCUSDT", "5m", start_ms=opens[0] + STEP, end_ms=opens[-1] - STEP)
    merged = sorted({c.open_time for c in closed} | {c.open_time for c in gap})
    assert merged == list(range(opens[0], opens[-1] + STEP, STEP))
    assert stream.state.reconnects == 1 and not stream.state.connected


async def test_server_shutdown_event_triggers_reconnect(fake_exchange) -> None:
    fake = fake_exchange(start=START, speed=SPEED, ws_update_ms=50)
    stream = make_stream(fake)
    sent = False

    async def shutdown_once(event, events) -> None:
        nonlocal sent
        if isinstance(event, KlineClosed) and not sent:
            sent = True
            await asyncio.to_thread(fake.announce_shutdown)

    events = await collect(stream, closes=2, on_event=shutdown_once)
    assert [e.reason for e in events if isinstance(e, Reconnected)] == ["server_shutdown"]


async def test_connection_is_renewed_at_max_age(fake_exchange) -> None:
    fake = fake_exchange(start=START, speed=SPEED, ws_update_ms=50)
    stream = make_stream(fake, max_age_seconds=0.7)
    events = await collect(stream, closes=2)
    reasons = {e.reason for e in events if isinstance(e, Reconnected)}
    assert reasons == {"max_age"}
    opens = [e.candle.open_time for e in events if isinstance(e, KlineClosed)]
    assert len(opens) == len(set(opens))


async def test_repeated_ws_drops_never_duplicate_closes(fake_exchange) -> None:
    fake = fake_exchange(start=START, speed=SPEED, ws_update_ms=50)
    fake.set_faults(ws_drop_every_messages=7)
    events = await collect(make_stream(fake), closes=3)
    assert sum(isinstance(e, Reconnected) for e in events) >= 2
    closed = [e.candle for e in events if isinstance(e, KlineClosed)]
    assert len({c.open_time for c in closed}) == len(closed)
    for c in closed:
        assert values(c) == csv_values(c.open_time)


async def test_unreachable_server_backs_off_until_it_returns(fake_exchange) -> None:
    fake = fake_exchange(start=START, speed=SPEED, ws_update_ms=50)
    stream = KlineStream(
        ws_base_url="ws://127.0.0.1:9",
        symbol="BTCUSDT",
        interval="5m",
        backoff_base=0.01,
        backoff_max=0.02,
    )
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async for _ in stream:
                pass
    assert stream.state.last_error is not None and not stream.state.connected
    assert (await collect(make_stream(fake), closes=1))[-1].candle.open_time > 0
