"""The use-case layer: every operation on a pair, in one place.

Each operation owns its lock, its job-run record, the tracking of exchange errors and the
notification after a refresh. The scheduler, the stream runner, the API routes and the CLI call
only these; none of them repeats the steps. Everything it needs comes in through `Parts`, so
the orchestration runs in tests on an in-memory database with fake exchanges and trainers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from candlecast.config import Settings
from candlecast.domain import (
    Candle,
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    Pair,
    PairAlreadyFollowed,
    PairNotTracked,
    UnknownPair,
    interval_ms,
    iso_utc,
)
from candlecast.hints import exchange_hint
from candlecast.jobs import imports, pipeline, sync
from candlecast.jobs.common import now_ms
from candlecast.jobs.model_cache import ModelCache
from candlecast.jobs.sync import KlineSource, ProgressCallback
from candlecast.runtime import Runtime
from candlecast.store import candle_reads, candle_rows, registry
from candlecast.store import candles as candle_store
from candlecast.store import pairs as pair_store
from candlecast.store.db import write_transaction
from candlecast.store.locks import job_lock
from candlecast.usecases.results import (
    ClosedCandleResult,
    ImportResult,
    RefreshResult,
    SyncResult,
    TrainResult,
)

log = logging.getLogger(__name__)

# Binance's "Invalid symbol." and "Invalid interval." error codes.
UNLISTED_CODES = (-1121, -1120)


class ExchangeSource(KlineSource, Protocol):
    """A REST client as the operations use it: klines, the clock, and the listing check."""

    def check_symbol(self, symbol: str) -> object: ...


# Runs a piece of work later (an executor's submit): what need not delay a forecast.
Deferrer = Callable[[Callable[[], None]], object]


class PairTrainer(Protocol):
    """Trains one pair (in a child process in the service) and returns the run's details."""

    def __call__(self, pair: Pair, *, days: float, force: bool) -> dict[str, Any]: ...


@dataclass
class Parts:
    """What the operations are built from; bootstrap fills it from Settings, tests with fakes."""

    engine: Engine
    settings: Settings
    # A new exchange client per operation (closed after it).
    exchange: Callable[[], AbstractContextManager[ExchangeSource]]
    # The exchange's time now, epoch ms: what "has this candle closed" is decided on.
    exchange_now: Callable[[], int]
    trainer: PairTrainer
    runtime: Runtime = field(default_factory=Runtime)
    # Decoded champions kept from one candle to the next (Services.models); None decodes anew.
    models: ModelCache | None = None


def lock_name(operation: str, pair: Pair) -> str:
    """The job lock of an operation on a pair, e.g. `ingest:BTCUSDT:5m`."""
    return f"{operation}:{pair.symbol}:{pair.interval}"


class PairOperations:
    """backfill, ingest, reconcile, on_closed_candle, train, forecast, refresh, evaluate, import,
    and following or dropping pairs."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.engine = parts.engine
        self.settings = parts.settings
        self.runtime = parts.runtime
        # Told after every refresh of a pair (the API's chart columns, the page's version).
        self.after_refresh: list[Callable[[Pair], None]] = []
        # Told after the followed pairs change (the service's stream and schedule follow).
        self.after_pairs_change: list[Callable[[], None]] = []

    # The followed pairs ---------------------------------------------------------------------

    def followed(self) -> list[Pair]:
        """The followed pairs in order; the first is every route's default."""
        with self.engine.connect() as connection:
            return [entry.pair for entry in pair_store.followed(connection)]

    def followed_entries(self) -> list[pair_store.FollowedPair]:
        """The followed pairs with their bookkeeping."""
        with self.engine.connect() as connection:
            return pair_store.followed(connection)

    def default_pair(self) -> Pair:
        """The first followed pair, else the first configured one."""
        followed = self.followed()
        return followed[0] if followed else self.settings.configured_pairs()[0]

    def is_followed(self, pair: Pair) -> bool:
        """Whether the pair is followed now."""
        with self.engine.connect() as connection:
            return pair_store.is_followed(connection, pair)

    def require_followed(self, pair: Pair) -> None:
        """Raises PairNotTracked, naming the remedy, unless the pair is followed."""
        if not self.is_followed(pair):
            raise PairNotTracked(
                f"{pair} is not followed by this service; add it with "
                f"`candlecast pairs add {pair}` or POST /api/pairs"
            )

    def seed_pairs(self) -> list[Pair]:
        """Follows the configured pairs never seen before (a removed one stays removed)."""
        with write_transaction(self.engine) as connection:
            added = pair_store.seed(connection, self.settings.configured_pairs(), added_at=now_ms())
        return added

    def follow(self, pair: Pair, *, check_exchange: bool = True) -> pair_store.FollowedPair:
        """Follows a pair after checking that the exchange lists it; the service then backfills,
        trains and forecasts it. Raises PairAlreadyFollowed or UnknownPair."""
        if self.is_followed(pair):
            raise PairAlreadyFollowed(f"{pair} is already followed")
        if check_exchange:
            self.check_listed(pair)
        with write_transaction(self.engine) as connection:
            if not pair_store.add(connection, pair, added_at=now_ms()):
                raise PairAlreadyFollowed(f"{pair} is already followed")
            entry = next(e for e in pair_store.followed(connection) if e.pair == pair)
        log.info("now following %s", pair)
        self._pairs_changed()
        return entry

    def unfollow(self, pair: Pair, *, purge: bool = False) -> dict[str, int]:
        """Stops following a pair; its data stays unless `purge`. Raises PairNotTracked."""
        with write_transaction(self.engine) as connection:
            if purge:
                # A pair removed earlier, its data kept, can still be purged.
                removed = pair_store.is_known(connection, pair)
                counts = pair_store.purge(connection, pair, removed_at=now_ms()) if removed else {}
            else:
                removed = pair_store.remove(connection, pair, removed_at=now_ms())
                counts = {}
        if not removed:
            raise PairNotTracked(f"{pair} is not followed")
        log.info("stopped following %s%s", pair, " and deleted its data" if purge else "")
        self._pairs_changed()
        return counts

    def check_listed(self, pair: Pair) -> None:
        """Raises UnknownPair unless the exchange lists the symbol and serves the interval."""
        try:
            # Not watched: a pair the exchange refuses says nothing about the connection.
            with self.parts.exchange() as client:
                client.check_symbol(pair.symbol)
                # A listed symbol answers every kline interval; one page proves the pair does.
                now = client.server_time()
                step = interval_ms(pair.interval)
                for _ in client.closed_kline_pages(
                    pair.symbol, pair.interval, start_ms=now - 3 * step, server_time_ms=now
                ):
                    break
        except ExchangeRejected as exc:
            if exc.code in UNLISTED_CODES:
                raise UnknownPair(f"the exchange does not list {pair}: {exc}") from None
            raise
        except ConfigError as exc:
            raise UnknownPair(f"the exchange does not list {pair}: {exc}") from None

    def _pairs_changed(self) -> None:
        for hook in self.after_pairs_change:
            try:
                hook()
            except Exception:
                log.exception("a pairs-changed hook failed")

    # Candles --------------------------------------------------------------------------------

    def backfill(
        self, pair: Pair, *, days: int | None = None, on_progress: ProgressCallback | None = None
    ) -> SyncResult:
        """Fills the pair's window of closed candles, fetching only what is missing."""
        chosen = days or self.settings.backfill_days
        with job_lock(self.engine, lock_name("backfill", pair)):
            report = self._sync(pair, sync.backfill, days=chosen, on_progress=on_progress)
            with write_transaction(self.engine) as connection:
                pair_store.mark_backfilled(connection, pair, at=now_ms())
        return SyncResult(pair, report, self.refresh(pair))

    def ingest(self, pair: Pair, *, on_progress: ProgressCallback | None = None) -> SyncResult:
        """Fetches every closed candle since the last stored one and repairs gaps."""
        with job_lock(self.engine, lock_name("ingest", pair)):
            report = self._sync(
                pair, sync.ingest, days=self.settings.backfill_days, on_progress=on_progress
            )
        return SyncResult(pair, report, self.refresh(pair))

    def reconcile(self, pair: Pair, *, on_progress: ProgressCallback | None = None) -> SyncResult:
        """Re-fetches the window, repairs every candle that differs, and fills predictions for
        candles that arrived after the fact."""
        with job_lock(self.engine, lock_name("reconcile", pair)):
            report = self._sync(
                pair, sync.reconcile, days=self.settings.backfill_days, on_progress=on_progress
            )
            filled = pipeline.fill_unpredicted(
                self.engine, symbol=pair.symbol, interval=pair.interval, models=self.parts.models
            )
        if filled:
            log.info("%s: materialized %d prediction(s) for filled candles", pair, filled)
        return SyncResult(pair, report, self.refresh(pair))

    def import_file(
        self,
        path: Path,
        *,
        pair: Pair | None = None,
        fallback: Pair | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> ImportResult:
        """Loads one dump or CSV file (all of it or nothing), then refreshes its pair."""
        report = imports.import_file(
            self.engine,
            path=path,
            symbol=pair.symbol if pair else None,
            interval=pair.interval if pair else None,
            fallback=(fallback.symbol, fallback.interval) if fallback else None,
            on_progress=on_progress,
        )
        imported = Pair(report.symbol, report.interval)
        return ImportResult(report, self.refresh(imported))

    def on_closed_candle(
        self, candle: Candle, *, defer: Deferrer | None = None
    ) -> ClosedCandleResult:
        """Stores a candle the stream saw close, then forecasts the next one; when the stream
        skipped candles, fetches them first over REST. `defer` as for refresh()."""
        pair = Pair(candle.symbol, candle.interval)
        with write_transaction(self.engine) as connection:
            newest = candle_reads.last_open_time(
                connection, symbol=pair.symbol, interval=pair.interval
            )
            candle_store.upsert_candles(
                connection,
                rows=[candle_rows.row_from_candle(candle)],
                source="ws",
                fetched_at=now_ms(),
                symbol=pair.symbol,
                interval=pair.interval,
            )
        if newest is not None and candle.open_time - newest > interval_ms(pair.interval):
            # The stream tells only of candles closing while it listens: those that closed
            # between the last stored one and the connection come over REST, now.
            log.info("%s: the stream skipped candles after %s; fetching", pair, iso_utc(newest))
            return ClosedCandleResult(pair, candle.open_time, True, self.ingest(pair).refresh)
        return ClosedCandleResult(pair, candle.open_time, False, self.refresh(pair, defer=defer))

    def _sync(
        self,
        pair: Pair,
        job: Callable[..., sync.SyncReport],
        *,
        days: int,
        on_progress: ProgressCallback | None = None,
    ) -> sync.SyncReport:
        with self._exchange_watch(pair), self.parts.exchange() as client:
            return job(
                self.engine,
                client,
                days=days,
                symbol=pair.symbol,
                interval=pair.interval,
                on_progress=on_progress,
            )

    @contextmanager
    def _exchange_watch(self, pair: Pair) -> Iterator[None]:
        """Records whether the exchange answered, what to do if it did not, and when the next
        attempt is due: for /api/health, /api/pairs and the dashboard's banner."""
        try:
            yield
        except ExchangeError as exc:
            self.runtime.pairs.failed(pair, str(exc))
            if not isinstance(exc, ExchangeRejected):
                # Unreachable, limited or banned: every pair of this process is affected. A
                # refusal of one request (a delisted symbol, say) concerns only its pair.
                hint = exchange_hint(exc, base_url=self.settings.binance_url)
                retry = now_ms() + self.settings.ingest_every_seconds * 1000
                self.runtime.update(
                    exchange_error=str(exc), exchange_hint=hint, next_retry_ms=retry
                )
            raise
        self.runtime.update(
            exchange_error=None, exchange_hint=None, next_retry_ms=None, exchange_reached=True
        )
        self.runtime.pairs.succeeded(pair)

    # Models and forecasts -------------------------------------------------------------------

    def train(self, pair: Pair, *, days: float | None = None, force: bool = False) -> TrainResult:
        """Trains (the trainer holds the pair's train lock), then refreshes the pair's
        forecasts, which a new champion serves from now."""
        chosen = days or self.settings.train_days
        details = self.parts.trainer(pair, days=chosen, force=force)
        result = TrainResult.from_details(pair, chosen, details)
        return replace(result, refresh=self.refresh(pair))

    def check_train_unlocked(self, pair: Pair) -> None:
        """Raises JobAlreadyRunning when the pair is training (here or in another process)."""
        with job_lock(self.engine, lock_name("train", pair)):
            pass

    def refresh(self, pair: Pair, *, defer: Deferrer | None = None) -> RefreshResult:
        """Scores the ledger, records the champion's next forecast (only while its candle is
        still open at the exchange), materializes predictions, and tells the listeners.

        With `defer`, only scoring and the forecast happen now: the predictions for the charts
        and the listeners are handed to `defer`, so that a candle close of many pairs records
        every pair's forecast first."""
        outcome = pipeline.refresh_after_candles(
            self.engine,
            exchange_clock=self.parts.exchange_now,
            symbol=pair.symbol,
            interval=pair.interval,
            models=self.parts.models,
            materialize_now=defer is None,
        )
        result = RefreshResult(
            pair=pair,
            scored=int(outcome["scored"]),
            recorded=int(outcome["recorded"]),
            materialized=int(outcome["materialized"]),
            champion_id=outcome["champion_id"],
        )
        self.runtime.bump()
        if defer is None:
            self._notify(pair)
        else:
            defer(lambda: self._finish_refresh(pair))
        return result

    def _finish_refresh(self, pair: Pair) -> None:
        try:
            pipeline.materialize_newest(
                self.engine, symbol=pair.symbol, interval=pair.interval, models=self.parts.models
            )
            self.runtime.bump()
        except Exception:
            log.exception("%s: could not materialize the newest predictions", pair)
        self._notify(pair)

    def _notify(self, pair: Pair) -> None:
        for hook in self.after_refresh:
            try:
                hook(pair)
            except Exception:
                log.exception("a post-refresh hook failed for %s", pair)

    def forecast(self, pair: Pair) -> RefreshResult:
        """Records the forecast of the pair's next candle now (and scores what has closed)."""
        return self.refresh(pair)

    def has_champion(self, pair: Pair) -> bool:
        """Whether a model serves the pair."""
        with self.engine.connect() as connection:
            champion = registry.champion_id(connection, symbol=pair.symbol, interval=pair.interval)
        return champion is not None

    def evaluate(
        self,
        pair: Pair,
        *,
        start: int | None,
        end: int | None,
        folds: int,
        train_days: float,
        on_stage: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Walk-forward evaluation over the pair's stored candles (recorded as a job run)."""
        from candlecast.jobs import modeling

        return modeling.evaluate(
            self.engine,
            symbol=pair.symbol,
            interval=pair.interval,
            start=start,
            end=end,
            folds=folds,
            train_days=train_days,
            on_stage=on_stage,
            reference=self.settings.reference_symbol or None,
        )
