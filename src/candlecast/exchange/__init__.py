"""The only code that talks to Binance: REST, WebSocket and public data dumps."""
