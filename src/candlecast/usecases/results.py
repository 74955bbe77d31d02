"""What the use-case operations answer: typed results, not dicts, between the layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from candlecast.domain import Pair
from candlecast.jobs.imports import ImportReport
from candlecast.jobs.sync import SyncReport


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """After new candles or a new champion: ledger scored, next forecast recorded, predictions
    materialized for the charts."""

    pair: Pair
    scored: int = 0
    recorded: int = 0
    materialized: int = 0
    champion_id: int | None = None


@dataclass(frozen=True, slots=True)
class SyncResult:
    """A backfill, ingest or reconcile and the refresh that followed it."""

    pair: Pair
    report: SyncReport
    refresh: RefreshResult


@dataclass(frozen=True, slots=True)
class ImportResult:
    """A file import and the refresh of the pair it filled."""

    report: ImportReport
    refresh: RefreshResult


@dataclass(frozen=True, slots=True)
class TrainResult:
    """One training: the model it registered (or the one it kept), and whether it now serves."""

    pair: Pair
    model_id: int | None
    promoted: bool
    skipped: bool
    reason: str | None
    days: float
    # The training's recorded details (stages, timings, decision): what the job run holds.
    details: dict[str, Any] = field(default_factory=dict)
    refresh: RefreshResult | None = None

    @classmethod
    def from_details(cls, pair: Pair, days: float, details: dict[str, Any]) -> TrainResult:
        """From the details dict a training child sends back over the process boundary."""
        model_id = details.get("model_id")
        reason = details.get("reason") or details.get("decision")
        return cls(
            pair=pair,
            model_id=None if model_id is None else int(model_id),
            promoted=bool(details.get("promoted")),
            skipped=bool(details.get("skipped")),
            reason=None if reason is None else str(reason),
            days=days,
            details=details,
        )


@dataclass(frozen=True, slots=True)
class ClosedCandleResult:
    """What a candle closing on the stream led to."""

    pair: Pair
    open_time: int
    # True when the stream had skipped candles and an ingest fetched them.
    gap_filled: bool
    refresh: RefreshResult | None
