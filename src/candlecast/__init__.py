"""candlecast: an exact, live copy of Binance klines with honest next-candle forecasts."""

__version__ = "0.1.0"
