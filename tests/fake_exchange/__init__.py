"""A loopback Binance stand-in (REST + kline WebSocket) replaying real candles from a CSV."""

from tests.fake_exchange.faults import FaultConfig
from tests.fake_exchange.market import Market, VirtualClock, load_market
from tests.fake_exchange.server import FakeExchange

__all__ = ["FakeExchange", "FaultConfig", "Market", "VirtualClock", "load_market"]
