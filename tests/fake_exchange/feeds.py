"""One market's kline events on one WebSocket: closes in order, the live candle, stream faults."""

from __future__ import annotations

import json
from typing import Any

from tests.fake_exchange.market import Market, Row, partial_row
from tests.fake_exchange.state import FakeState

# After a big clock jump only this many closes are sent, like a real stream that skipped ahead.
MAX_CATCH_UP_CLOSES = 10


def kline_event(market: Market, row: Row, *, event_ms: int, closed: bool) -> dict[str, Any]:
    """A Binance-shaped kline event for a final (closed) or partial row."""
    first_trade = row.open_time // 1000 if row.trades else -1
    last_trade = first_trade + row.trades - 1 if row.trades else -1
    k = {
        "t": row.open_time,
        "T": row.close_time,
        "s": market.symbol,
        "i": market.interval,
        "f": first_trade,
        "L": last_trade,
        "o": row.open,
        "c": row.close,
        "h": row.high,
        "l": row.low,
        "v": row.volume,
        "n": row.trades,
        "x": closed,
        "q": row.quote_volume,
        "V": row.taker_buy_base,
        "Q": row.taker_buy_quote,
        "B": "0",
    }
    return {"e": "kline", "E": event_ms, "s": market.symbol, "k": k}


def kline_message(
    market: Market, row: Row, *, event_ms: int, closed: bool, combined: bool = False
) -> str:
    """The event as sent: raw, or wrapped {"stream": name, "data": event} on combined streams."""
    event = kline_event(market, row, event_ms=event_ms, closed=closed)
    return json.dumps({"stream": market.stream, "data": event} if combined else event)


def _closed_before(market: Market, index: int, now: int) -> bool:
    # From open_times: synthetic rows cost a computation to read.
    return market.open_times[index] + market.step_ms - 1 < now


def _pending_closes(market: Market, next_close: int, now: int) -> range:
    end = next_close
    while end < len(market.open_times) and _closed_before(market, end, now):
        end += 1
    return range(max(next_close, end - MAX_CATCH_UP_CLOSES), end)


class Feed:
    """What one subscription to one market has been sent, and what it should hear next."""

    def __init__(self, market: Market, now_ms: int, *, combined: bool) -> None:
        self.market = market
        self.combined = combined
        # Like Binance, a new subscription hears about the current candle, not earlier ones.
        next_close = market.visible_end(now_ms)
        if next_close > 0 and not _closed_before(market, next_close - 1, now_ms):
            next_close -= 1
        self.next_close = next_close
        # A close held back by the reorder fault, sent after the next one.
        self.held: list[str] = []

    def poll(self, state: FakeState, now_ms: int) -> list[str]:
        """Messages due now: closes since the last poll, then the live candle's update."""
        market = self.market
        messages: list[tuple[str, bool]] = []
        closes = _pending_closes(market, self.next_close, now_ms)
        for i in closes:
            text = self._text(market.rows[i], now_ms, closed=True)
            messages.append((text, True))
        self.next_close = max(self.next_close, closes.stop)
        current = market.visible_end(now_ms) - 1
        if current >= 0 and not _closed_before(market, current, now_ms):
            row = partial_row(market.rows[current], now_ms)
            messages.append((self._text(row, now_ms, closed=False), False))
        return self._with_faults(state, messages)

    def _text(self, row: Row, now_ms: int, *, closed: bool) -> str:
        return kline_message(
            self.market, row, event_ms=now_ms, closed=closed, combined=self.combined
        )

    def _with_faults(self, state: FakeState, messages: list[tuple[str, bool]]) -> list[str]:
        """Applies the duplicate and reorder faults to (text, closed) messages."""
        cfg = state.faults.config
        out: list[str] = []
        for text, closed in messages:
            if not closed:
                out.append(text)
                continue
            if cfg.ws_reorder_closes and not self.held:
                self.held.append(text)  # sent after the next close, so that one arrives first
                state.faults.count_ws("ws_reorder")
                continue
            out.append(text)
            if cfg.ws_duplicate_closes:
                out.append(text)
                state.faults.count_ws("ws_duplicate")
            out.extend(self.held)
            self.held.clear()
        return out
