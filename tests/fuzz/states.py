"""Databases in the states the API must survive, and an app over each.

- `empty`: migrated, no candles.
- `starting`: the first start-up caught mid-way: a partial backfill (one day), no model yet.
- `running`: three days and a candle, a champion, its materialized predictions and ledger entries
  (one of them scored).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine

from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.jobs import modeling, pipeline
from candlecast.runtime import Runtime
from tests.integration.api_support import FIRST, STEP, TOKEN, load

STATES = ("empty", "starting", "running")
# Few trees: the fuzzers check the API's plumbing, not the model's quality.
FAST = {"n_estimators": 15, "classifier_estimators": 10}
SYMBOL, INTERVAL = "BTCUSDT", "5m"


def prepare(engine: Engine, state: str) -> int | None:
    """Puts a migrated, empty database into `state`; returns the newest open_time stored."""
    if state == "empty":
        return None
    if state == "starting":
        return load(engine, days=1)
    if state != "running":
        raise ValueError(f"unknown database state {state!r}; expected one of {STATES}")
    last = load(engine, days=3)
    modeling.train_model(engine, symbol=SYMBOL, interval=INTERVAL, days=3, params=FAST)
    pipeline.refresh_after_candles(engine, symbol=SYMBOL, interval=INTERVAL)
    newest = load(engine, days=STEP / 86_400_000, first=last + STEP)
    pipeline.refresh_after_candles(engine, symbol=SYMBOL, interval=INTERVAL)
    return newest


def fast_trainer(engine: Engine) -> Any:
    """POST /api/train's trainer, in-process and with few trees (the real one forks a child)."""

    def trainer(settings: Settings, *, symbol: str, interval: str, days: float) -> dict[str, Any]:
        outcome = modeling.train_model(
            engine, symbol=symbol, interval=interval, days=days, params=FAST
        )
        return {
            "skipped": outcome.skipped,
            "model_id": outcome.model_id,
            "promoted": outcome.promoted,
            **outcome.details,
        }

    return trainer


def build_app(
    engine: Engine,
    database_url: str,
    *,
    now: int,
    exchange_url: str | None = None,
    **settings: Any,
) -> FastAPI:
    """The real app over real services on this engine, at exchange time `now` (the replayed
    candles are from 2025); the exchange is the fake one when given."""
    options: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "backfill_days": 3,
        # Long POSTs answer 202 quickly rather than holding the request.
        "train_wait_seconds": 2,
        **settings,
    }
    if exchange_url is not None:
        options["binance_url"] = exchange_url
    services = Services(settings=Settings(**options), engine=engine)
    if exchange_url is not None:
        services.exchange_time()  # measures the exchange clock's offset, as serve does at start
    return create_app(services, Runtime(), trainer=fast_trainer(engine), clock=lambda: now)


def exchange_start(newest: int | None) -> int:
    """The fake exchange's frozen clock: a few candles after the newest stored one."""
    base = FIRST + 3 * 86_400_000 if newest is None else newest
    return base + 4 * STEP + 1000


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, included routers and hidden routes too."""
    found: set[tuple[str, str]] = set()

    def walk(entries: list[Any], prefix: str) -> None:
        for entry in entries:
            original = getattr(entry, "original_router", None)
            if original is not None:  # FastAPI >= 0.16x keeps included routers whole
                walk(original.routes, prefix + (entry.include_context.prefix or ""))
            elif isinstance(getattr(entry, "methods", None), set):
                found.update((method, prefix + entry.path) for method in entry.methods)

    walk(list(app.routes), "")
    return sorted(found - {("HEAD", path) for _method, path in found})


def drain(app: FastAPI) -> None:
    """Waits for the jobs POSTs started in the background (202), so none outlives the test."""
    app.state.context.background._pool.shutdown(wait=True)
