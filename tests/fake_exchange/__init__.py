"""A loopback Binance stand-in (REST + kline WebSockets) replaying real candles from CSVs."""

from tests.fake_exchange.faults import FaultConfig
from tests.fake_exchange.market import Market, VirtualClock, load_market, stream_name
from tests.fake_exchange.server import FakeExchange, MarketSpec, resolve_market
from tests.fake_exchange.state import Stats, WsLimits
from tests.fake_exchange.synthetic import synthetic_market, synthetic_markets
from tests.fake_exchange.ws import ConnectionInfo

__all__ = [
    "ConnectionInfo",
    "FakeExchange",
    "FaultConfig",
    "Market",
    "MarketSpec",
    "Stats",
    "VirtualClock",
    "WsLimits",
    "load_market",
    "resolve_market",
    "stream_name",
    "synthetic_market",
    "synthetic_markets",
]
