"""The use-case layer: one place for every operation on a pair."""

from candlecast.usecases.operations import PairOperations, PairTrainer, Parts, lock_name
from candlecast.usecases.results import (
    ClosedCandleResult,
    ImportResult,
    RefreshResult,
    SyncResult,
    TrainResult,
)

__all__ = [
    "ClosedCandleResult",
    "ImportResult",
    "PairOperations",
    "PairTrainer",
    "Parts",
    "RefreshResult",
    "SyncResult",
    "TrainResult",
    "lock_name",
]
