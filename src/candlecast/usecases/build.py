"""Builds the use-case layer from the running services: the real exchange, the exchange's
clock, and training in the bounded pool of child processes."""

from __future__ import annotations

from typing import Any, Protocol

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.runtime import Runtime
from candlecast.usecases.operations import PairOperations, PairTrainer, Parts


class SettingsTrainer(Protocol):
    """A trainer as the pool and the one-off child offer it: by settings, symbol and interval."""

    def __call__(
        self, settings: Settings, *, symbol: str, interval: str, days: float, force: bool = False
    ) -> dict[str, Any]: ...


def pair_trainer(settings: Settings, train: SettingsTrainer) -> PairTrainer:
    """Adapts a settings-keyed trainer (TrainingPool.train) to the operations' trainer."""

    def trainer(pair: Pair, *, days: float, force: bool) -> dict[str, Any]:
        return train(settings, symbol=pair.symbol, interval=pair.interval, days=days, force=force)

    return trainer


def exchange_clock(services: Services) -> int:
    """The exchange's time: the measured offset once known, else one GET /api/v3/time."""
    if services.clock.measured:
        return services.clock.now_ms()
    return services.exchange_time()


def build_operations(
    services: Services, runtime: Runtime, *, trainer: PairTrainer
) -> PairOperations:
    """The operations over these services, training with `trainer`."""
    return PairOperations(
        Parts(
            engine=services.engine,
            settings=services.settings,
            exchange=services.exchange,
            exchange_now=lambda: exchange_clock(services),
            trainer=trainer,
            runtime=runtime,
            models=services.models,
        )
    )
