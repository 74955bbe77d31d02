"""Wiring: Settings become an engine and exchange clients here, and nowhere at import time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from candlecast.config import Settings
from candlecast.exchange.rest import BinanceRest
from candlecast.store import db


@dataclass
class Services:
    """The long-lived parts of a running candlecast: settings and the database engine."""

    settings: Settings
    engine: Engine

    def exchange(self) -> BinanceRest:
        """A new REST client for the configured exchange; close it when done."""
        return BinanceRest.from_settings(self.settings)

    def exchange_time(self) -> int:
        """The exchange's clock (GET /api/v3/time), epoch ms."""
        with self.exchange() as client:
            return client.server_time()

    def close(self) -> None:
        """Releases pooled database connections."""
        self.engine.dispose()


def bootstrap(settings: Settings, *, migrate: bool = True) -> Services:
    """Builds the services for these settings and, by default, migrates the database."""
    engine = db.create_store_engine(settings.database_url)
    if migrate:
        db.upgrade(engine)
    return Services(settings=settings, engine=engine)
