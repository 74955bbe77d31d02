"""The use-case layer's orchestration with in-memory parts: an exchange of generated candles,
recording trainers and an in-memory SQLite store. The whole module runs in well under a
second; the HTTP edges are tested against the fake exchange elsewhere."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.pool import StaticPool

from candlecast.config import Settings
from candlecast.domain import (
    ExchangeRejected,
    ExchangeUnavailable,
    JobAlreadyRunning,
    Pair,
    PairAlreadyFollowed,
    PairNotTracked,
    UnknownPair,
    interval_ms,
)
from candlecast.runtime import Runtime
from candlecast.store import candle_reads, locks, runs
from candlecast.store.locks import job_lock
from candlecast.store.tables import candles, job_runs, metadata
from candlecast.usecases import PairOperations, Parts, lock_name
from tests.usecase_fakes import MemoryExchange

BTC = Pair("BTCUSDT", "5m")
ETH = Pair("ETHUSDT", "5m")
SOL = Pair("SOLUSDT", "1h")
NOW = 1_750_000_000_000 + 123_456
STEP = interval_ms("5m")


@pytest.fixture(scope="module")
def memory_engine() -> Iterator[Engine]:
    from sqlalchemy import create_engine

    # One shared in-memory database for the module, each test on its own pairs. The schema comes
    # from the table definitions (tests/integration/test_ledger_unique.py checks that they match
    # the migrations), which takes milliseconds where running the migrations takes a second.
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    metadata.create_all(engine)
    locks.configure(engine, None)
    yield engine
    engine.dispose()


class Recorder:
    """A trainer that records its calls and registers nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[Pair, float, bool]] = []

    def __call__(self, pair: Pair, *, days: float, force: bool) -> dict[str, Any]:
        self.calls.append((pair, days, force))
        return {"model_id": 7, "promoted": True, "decision": "first model"}


def operations_for(
    engine: Engine, exchange: MemoryExchange, *, configured: str = "BTCUSDT:5m"
) -> tuple[PairOperations, Recorder]:
    trainer = Recorder()
    parts = Parts(
        engine=engine,
        settings=Settings(pairs=configured, backfill_days=1, train_days=2),
        exchange=lambda: exchange,
        exchange_now=lambda: exchange.now_ms,
        trainer=trainer,
        runtime=Runtime(scheduler_enabled=True),
    )
    return PairOperations(parts), trainer


def stored(engine: Engine, pair: Pair) -> int:
    with engine.connect() as connection:
        return candle_reads.count_candles(connection, symbol=pair.symbol, interval=pair.interval)


def test_following_checks_the_exchange_and_keeps_the_order(memory_engine: Engine) -> None:
    exchange = MemoryExchange([BTC, ETH, SOL], now_ms=NOW, history_ms=86_400_000)
    ops, _ = operations_for(memory_engine, exchange, configured="BTCUSDT:5m,ETHUSDT:5m")
    changes: list[str] = []
    ops.after_pairs_change.append(lambda: changes.append("changed"))
    assert ops.seed_pairs() == [BTC, ETH]
    assert ops.followed() == [BTC, ETH] and ops.default_pair() == BTC
    with pytest.raises(UnknownPair, match="DOGEUSDT"):
        ops.follow(Pair("DOGEUSDT", "5m"))
    with pytest.raises(UnknownPair, match="1m"):
        ops.follow(Pair("SOLUSDT", "1m"))  # listed symbol, interval the exchange refuses
    assert ops.followed() == [BTC, ETH] and changes == []
    entry = ops.follow(SOL)
    assert entry.pair == SOL and entry.backfilled_at is None
    with pytest.raises(PairAlreadyFollowed):
        ops.follow(SOL)
    assert ops.followed() == [BTC, ETH, SOL] and changes == ["changed"]
    # Removed pairs stay removed when the configuration seeds again, until added back.
    ops.unfollow(ETH)
    assert ops.seed_pairs() == [] and ops.followed() == [BTC, SOL]
    with pytest.raises(PairNotTracked):
        ops.unfollow(ETH)
    ops.follow(ETH)
    assert ops.followed() == [BTC, SOL, ETH]
    ops.unfollow(SOL)
    ops.unfollow(ETH)


def test_backfill_stores_marks_records_and_notifies(memory_engine: Engine) -> None:
    pair = Pair("BFUSDT", "5m")
    exchange = MemoryExchange([pair], now_ms=NOW, history_ms=86_400_000)
    ops, _ = operations_for(memory_engine, exchange, configured=str(pair))
    ops.seed_pairs()
    refreshed: list[Pair] = []
    ops.after_refresh.append(refreshed.append)
    result = ops.backfill(pair)
    # A day's window of closed candles, its first one whole.
    assert result.report.written.inserted == 287 == stored(memory_engine, pair)
    assert result.refresh.pair == pair and refreshed == [pair]
    assert next(e for e in ops.followed_entries() if e.pair == pair).backfilled_at is not None
    with memory_engine.connect() as connection:
        names = connection.execute(
            select(job_runs.c.name, job_runs.c.status).where(job_runs.c.symbol == pair.symbol)
        ).all()
    assert [tuple(row) for row in names] == [("backfill", runs.OK)]
    # The next close, then a skipped one: the stream's gap is fetched over REST.
    exchange.now_ms += 2 * STEP
    newest = NOW // STEP * STEP - STEP
    closed = ops.on_closed_candle(exchange.candle(pair, newest + STEP))
    assert not closed.gap_filled
    exchange.now_ms += 2 * STEP
    closed = ops.on_closed_candle(exchange.candle(pair, newest + 3 * STEP))
    assert closed.gap_filled and stored(memory_engine, pair) == 291  # all closed by now
    ops.unfollow(pair, purge=True)
    assert stored(memory_engine, pair) == 0
    # Purged, it stays removed though the configuration names it.
    assert ops.seed_pairs() == [] and pair not in ops.followed()


def test_an_exchange_failure_is_tracked_per_pair_and_cleared(memory_engine: Engine) -> None:
    pair = Pair("ERRUSDT", "5m")
    exchange = MemoryExchange([pair], now_ms=NOW, history_ms=3 * STEP)
    ops, _ = operations_for(memory_engine, exchange, configured=str(pair))
    exchange.failure = ExchangeUnavailable("ConnectError: no route to host")
    with pytest.raises(ExchangeUnavailable):
        ops.ingest(pair)
    assert ops.runtime.pairs.get(pair).error is not None
    assert ops.runtime.connection()["state"] == "offline"
    exchange.failure = None
    ops.ingest(pair)
    assert ops.runtime.pairs.get(pair).error is None
    assert ops.runtime.exchange_error is None


def test_each_operation_holds_its_own_lock(memory_engine: Engine) -> None:
    pair = Pair("LOCKUSDT", "5m")
    exchange = MemoryExchange([pair], now_ms=NOW, history_ms=3 * STEP)
    ops, _ = operations_for(memory_engine, exchange, configured=str(pair))
    with job_lock(memory_engine, lock_name("backfill", pair)):
        with pytest.raises(JobAlreadyRunning):
            ops.backfill(pair)
        ops.ingest(pair)  # another operation, another lock
    with job_lock(memory_engine, lock_name("train", pair)), pytest.raises(JobAlreadyRunning):
        ops.check_train_unlocked(pair)


def test_train_gives_a_typed_result_and_refreshes(memory_engine: Engine) -> None:
    pair = Pair("TRNUSDT", "5m")
    exchange = MemoryExchange([pair], now_ms=NOW, history_ms=3 * STEP)
    ops, trainer = operations_for(memory_engine, exchange, configured=str(pair))
    refreshed: list[Pair] = []
    ops.after_refresh.append(refreshed.append)
    result = ops.train(pair, force=True)
    assert trainer.calls == [(pair, 2, True)]
    assert result.model_id == 7 and result.promoted and result.reason == "first model"
    assert result.refresh is not None and refreshed == [pair]


def test_a_closed_candle_of_the_stream_is_stored_once(memory_engine: Engine) -> None:
    pair = Pair("WSUSDT", "5m")
    exchange = MemoryExchange([pair], now_ms=NOW, history_ms=3 * STEP)
    ops, _ = operations_for(memory_engine, exchange, configured=str(pair))
    candle = exchange.candle(pair, NOW // STEP * STEP - STEP)
    for _ in range(2):
        ops.on_closed_candle(candle)
    with memory_engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(candles).where(candles.c.symbol == pair.symbol)
        ).scalar_one()
    assert count == 1


def test_a_refused_request_concerns_only_its_pair(memory_engine: Engine) -> None:
    pair = Pair("GONEUSDT", "5m")
    exchange = MemoryExchange([pair], now_ms=NOW, history_ms=3 * STEP)
    ops, _ = operations_for(memory_engine, exchange, configured=str(pair))
    exchange.failure = ExchangeRejected(400, -1121, "Invalid symbol.")
    with pytest.raises(ExchangeRejected):
        ops.ingest(pair)
    assert ops.runtime.pairs.get(pair).error is not None
    assert ops.runtime.exchange_error is None
