"""The FastAPI app factory: everything is built per call, nothing at import time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from candlecast import web
from candlecast.api import errors, routes_data, routes_legacy, routes_ops, routes_series
from candlecast.api.context import ApiContext, Trainer
from candlecast.api.middleware import GuardMiddleware, MetricsMiddleware, RootPathMiddleware
from candlecast.api.routes_meta import OPENAPI_PATH, install_docs, metrics_router
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.metrics import Metrics
from candlecast.runtime import Runtime

DESCRIPTION = (
    "Closed Binance klines, next-candle forecasts with their baselines, and the jobs that keep "
    "them current. Read routes are public; POST routes need `Authorization: Bearer <token>`."
)


def _train_isolated(
    settings: Settings, *, symbol: str, interval: str, days: float
) -> dict[str, Any]:
    from candlecast.jobs.isolated import train_isolated

    return train_isolated(settings, symbol=symbol, interval=interval, days=days)


def create_app(
    services: Services,
    runtime: Runtime,
    *,
    trainer: Trainer | None = None,
    clock: Callable[[], int] | None = None,
) -> FastAPI:
    """Builds the API over these services; `trainer` and `clock` exist for tests."""
    if services.metrics is None:
        # Exchange clients and the stream built from these services then report to the same
        # registry that /metrics renders.
        services.metrics = Metrics(
            engine=services.engine, runtime=runtime, settings=services.settings
        )
    metrics = services.metrics
    app = FastAPI(
        title="candlecast",
        version="0.1.0",
        description=DESCRIPTION,
        docs_url=None,
        openapi_url=OPENAPI_PATH,
        redoc_url=None,
        responses=errors.DECLARED_RESPONSES,
    )
    app.state.context = ApiContext(
        services=services,
        runtime=runtime,
        trainer=trainer or _train_isolated,
        clock=clock or runtime.exchange_now_ms,
    )
    errors.install(app)
    for module in (routes_legacy, routes_series, routes_data, routes_ops):
        app.include_router(module.router)
    app.include_router(metrics_router(metrics))
    install_docs(app)
    app.state.metrics = metrics
    web.mount(app, services=services, runtime=runtime)
    app.add_middleware(GuardMiddleware)
    origins = services.settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, observe=metrics.http_request)
    if services.settings.root_path:
        # Outermost, so everything inside sees the prefix (FastAPI's own root_path argument
        # is deprecated; this is what it did).
        app.add_middleware(RootPathMiddleware, prefix=services.settings.root_path)
    return app
