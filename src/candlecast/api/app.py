"""The FastAPI app factory: everything is built per call, nothing at import time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from candlecast import web
from candlecast.api import (
    errors,
    routes_data,
    routes_horizons,
    routes_ledger,
    routes_legacy,
    routes_ops,
    routes_pairs,
    routes_queue,
    routes_series,
    routes_version,
)
from candlecast.api.context import ApiContext, Trainer
from candlecast.api.middleware import GuardMiddleware, MetricsMiddleware, RootPathMiddleware
from candlecast.api.routes_meta import OPENAPI_PATH, install_docs, metrics_router
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.metrics import Metrics
from candlecast.runtime import Runtime
from candlecast.usecases import PairOperations, PairTrainer
from candlecast.usecases.build import build_operations

DESCRIPTION = (
    "Closed Binance klines, next-candle forecasts with their baselines, and the jobs that keep "
    "them current. Read routes are public; POST routes need `Authorization: Bearer <token>`."
)


def _train_isolated(
    settings: Settings, *, symbol: str, interval: str, days: float
) -> dict[str, Any]:
    from candlecast.jobs.isolated import train_isolated

    return train_isolated(settings, symbol=symbol, interval=interval, days=days)


def _pair_trainer(settings: Settings, trainer: Trainer) -> PairTrainer:
    def train(pair: Pair, *, days: float, force: bool) -> dict[str, Any]:
        return trainer(settings, symbol=pair.symbol, interval=pair.interval, days=days)

    return train


def create_app(
    services: Services,
    runtime: Runtime,
    *,
    trainer: Trainer | None = None,
    clock: Callable[[], int] | None = None,
    operations: PairOperations | None = None,
) -> FastAPI:
    """Builds the API over these services and the use-case layer (built here, training with
    `trainer`, unless given); `trainer` and `clock` exist for tests."""
    chosen_trainer = trainer or _train_isolated
    if operations is None:
        operations = build_operations(
            services, runtime, trainer=_pair_trainer(services.settings, chosen_trainer)
        )
        operations.seed_pairs()
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
        trainer=chosen_trainer,
        operations=operations,
        clock=clock or runtime.exchange_now_ms,
    )
    errors.install(app)
    for module in (routes_legacy, routes_series, routes_data, routes_ops, routes_pairs):
        app.include_router(module.router)
    app.include_router(routes_queue.router)
    app.include_router(metrics_router(metrics))
    app.include_router(routes_version.build_router(services, runtime))
    app.include_router(routes_ledger.build_router())
    app.include_router(routes_horizons.build_router())
    install_docs(app)
    app.state.metrics = metrics
    web.mount(app, services=services)
    app.add_middleware(GuardMiddleware)
    origins = services.settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, observe=metrics.http_request)
    if services.settings.root_path:
        # Outermost, so everything inside sees the prefix (FastAPI's own root_path argument
        # is deprecated; this is what it did).
        app.add_middleware(RootPathMiddleware, prefix=services.settings.root_path)
    return app
