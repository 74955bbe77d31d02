"""One process's Prometheus registry and the event hooks the exchange clients and the HTTP
middleware call."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import Engine

from candlecast.config import Settings
from candlecast.metrics.collector import StoreCollector
from candlecast.runtime import Runtime

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One process's registry, and the hooks the exchange clients and middleware report to."""

    def __init__(self, *, engine: Engine, runtime: Runtime, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        registry = self.registry
        self.exchange_requests = Counter(
            "candlecast_exchange_requests",
            "HTTP requests to the exchange, by endpoint and status (error: no answer)",
            ("endpoint", "status"),
            registry=registry,
        )
        self.exchange_weight_used = Gauge(
            "candlecast_exchange_weight_used",
            "Request weight used this minute, as the exchange last reported it",
            registry=registry,
        )
        self.exchange_weight_limit = Gauge(
            "candlecast_exchange_weight_limit",
            "The per-minute request weight candlecast keeps under (Binance allows 6,000)",
            registry=registry,
        )
        self.exchange_weight_limit.set(settings.weight_budget_per_minute)
        self.stream_connections = Counter(
            "candlecast_stream_connections",
            "Kline WebSocket connections opened",
            registry=registry,
        )
        self.stream_reconnects = Counter(
            "candlecast_stream_reconnects",
            "Kline WebSocket connections opened after a disconnect",
            registry=registry,
        )
        self.stream_messages = Counter(
            "candlecast_stream_messages",
            "Messages received on the kline WebSocket",
            registry=registry,
        )
        self.http_requests = Counter(
            "candlecast_http_requests",
            "HTTP requests served, by method, route template and status",
            ("method", "route", "status"),
            registry=registry,
        )
        self.http_duration = Histogram(
            "candlecast_http_request_duration_seconds",
            "Time to serve an HTTP request, by method and route template",
            ("method", "route"),
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.store = StoreCollector(engine, runtime)
        registry.register(self.store)

    def exchange_request(self, endpoint: str, status: str, weight_used: int | None) -> None:
        """Counts one request to the exchange (BinanceRest's observer hook)."""
        self.exchange_requests.labels(endpoint, status).inc()
        if weight_used is not None:
            self.exchange_weight_used.set(weight_used)

    def stream_connected(self, *, reconnect: bool) -> None:
        """Counts a WebSocket connection (KlineStream's observer hook)."""
        self.stream_connections.inc()
        if reconnect:
            self.stream_reconnects.inc()

    def stream_message(self) -> None:
        """Counts one WebSocket message (KlineStream's observer hook)."""
        self.stream_messages.inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Counts one served HTTP request (the metrics middleware's hook)."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
