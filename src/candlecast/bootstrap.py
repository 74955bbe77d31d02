"""Wiring: Settings become an engine and exchange clients here, and nowhere at import time."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from candlecast.clock import ExchangeClock
from candlecast.config import Settings
from candlecast.store import bans, db, locks

if TYPE_CHECKING:
    from candlecast.exchange.governor import WeightGovernor
    from candlecast.exchange.rest import BinanceRest
    from candlecast.jobs.isolated import TrainingPool
    from candlecast.jobs.model_cache import ModelCache
    from candlecast.metrics import Metrics

log = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Services:
    """The long-lived parts of a running candlecast: settings and the database engine."""

    settings: Settings
    engine: Engine
    # Measured on every /api/v3/time read by any client built here.
    clock: ExchangeClock = field(default_factory=ExchangeClock)
    # This process's Prometheus registry (built by create_app); exchange clients report to it.
    metrics: Metrics | None = None
    # One weight budget for every exchange client of this process: they share one IP.
    governor: WeightGovernor = field(init=False)
    # Decoded model bundles, for every job and route of this process that loads one.
    models: ModelCache = field(init=False)
    # The warm training children (settings.train_workers at most), started as trainings need
    # them; stopped by close().
    training: TrainingPool = field(init=False)

    def __post_init__(self) -> None:
        # Imported when Services are built, not with this module, which stays light to import.
        from candlecast.jobs.isolated import TrainingPool
        from candlecast.jobs.model_cache import ModelCache

        self.models = ModelCache()
        self.training = TrainingPool(workers=self.settings.train_workers)
        # The engine carries its job-lock configuration: state folder, in-memory lock table.
        locks.configure(self.engine, self.settings.state_dir)
        from candlecast.exchange.governor import WeightGovernor

        self.governor = WeightGovernor(
            budget_per_minute=self.settings.weight_budget_per_minute,
            sleep=time.sleep,
            wall_clock=time.time,
        )

    def exchange(self) -> BinanceRest:
        """A new REST client for the configured exchange; close it when done."""
        from candlecast.exchange.rest import BinanceRest

        base_url = self.settings.binance_url
        with self.engine.connect() as connection:
            until = bans.banned_until(connection, base_url=base_url, now_ms=_wall_ms())
        return BinanceRest.from_settings(
            self.settings,
            on_server_time=self.clock.observe,
            banned_until_ms=until,
            on_ban=self._record_ban,
            observer=self.metrics,
            governor=self.governor,
        )

    def _record_ban(self, until_ms: int) -> None:
        """Persists a 418 ban so that other processes, and this one after a restart, obey it."""
        try:
            with db.write_transaction(self.engine) as connection:
                bans.record(
                    connection,
                    base_url=self.settings.binance_url,
                    until_ms=until_ms,
                    recorded_at=_wall_ms(),
                )
        except Exception:
            # The client still honours the ban in memory; losing the record must not hide it.
            log.exception("could not record the exchange ban until %d", until_ms)

    def exchange_time(self) -> int:
        """The exchange's clock (GET /api/v3/time), epoch ms."""
        with self.exchange() as client:
            return client.server_time()

    def close(self) -> None:
        """Ends the training children and releases pooled database connections."""
        self.training.stop()
        self.engine.dispose()


def bootstrap(settings: Settings, *, migrate: bool = True) -> Services:
    """Builds the services for these settings and, by default, migrates the database."""
    engine = db.create_store_engine(settings.database_url)
    if migrate:
        db.upgrade(engine)
    return Services(settings=settings, engine=engine)
