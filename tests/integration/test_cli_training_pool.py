"""The service's warm training child: reused across trainings, ended on stop, replaced on a crash.

These are process tests, so they run on one backend (a SQLite file): what is under test is the
child's life, not storage, which the model tests cover on both backends.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from candlecast.config import Settings
from candlecast.jobs.isolated import TrainingCrashed, TrainingPool, TrainingStopped
from candlecast.store import db
from candlecast.store.tables import models
from tests.integration.api_support import load

DAYS = 3


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[Settings, Engine]]:
    url = f"sqlite:///{tmp_path / 'candlecast.db'}"
    engine = db.create_store_engine(url)
    db.upgrade(engine)
    load(engine, days=DAYS)
    try:
        yield Settings(database_url=url, api_token="a-test-token-of-some-length"), engine
    finally:
        engine.dispose()


@pytest.fixture
def pool() -> Iterator[TrainingPool]:
    training = TrainingPool()
    try:
        yield training
    finally:
        training.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_dead(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive"
        time.sleep(0.05)


def _model_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(models)).scalar_one())


def _train(pool: TrainingPool, settings: Settings, *, force: bool = False) -> dict[str, Any]:
    return pool.train(settings, symbol="BTCUSDT", interval="5m", days=DAYS, force=force)


def test_trainings_reuse_one_warm_child_and_stop_ends_it(
    pool: TrainingPool, stored: tuple[Settings, Engine]
) -> None:
    settings, engine = stored
    pool.start()
    pid = pool.pid
    assert pid is not None and pid != os.getpid() and _alive(pid)
    first = _train(pool, settings)
    second = _train(pool, settings, force=True)
    assert first["pid"] == second["pid"] == pid == pool.pid
    assert first["model_id"] != second["model_id"] and _model_count(engine) == 2
    assert pool.stop() == 0  # it was idle
    _wait_dead(pid)
    assert pool.pid is None
    with pytest.raises(TrainingStopped):
        _train(pool, settings)


def test_an_idle_child_that_died_is_replaced_before_training(
    pool: TrainingPool, stored: tuple[Settings, Engine]
) -> None:
    settings, _ = stored
    pool.start()
    killed = pool.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    _wait_dead(killed)
    details = _train(pool, settings)
    assert details["pid"] != killed and details["model_id"] is not None
    assert pool.pid == details["pid"]


def _training_in_thread(
    pool: TrainingPool, settings: Settings
) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(_train(pool, settings))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_child_that_dies_mid_training_is_replaced_and_nothing_is_saved(
    pool: TrainingPool, stored: tuple[Settings, Engine]
) -> None:
    settings, engine = stored
    pool.start()
    crashed = pool.pid
    assert crashed is not None
    # Holding SQLite's write lock parks the child inside the training, at its first write.
    with db.write_transaction(engine):
        thread, outcome = _training_in_thread(pool, settings)
        time.sleep(1.0)
        os.kill(crashed, signal.SIGKILL)
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], TrainingCrashed), outcome
    replacement = pool.pid
    assert replacement is not None and replacement != crashed and _alive(replacement)
    assert _model_count(engine) == 0
    assert _train(pool, settings)["pid"] == replacement


def test_stop_during_a_training_ends_it_without_saving(
    pool: TrainingPool, stored: tuple[Settings, Engine]
) -> None:
    settings, engine = stored
    pool.start()
    pid = pool.pid
    assert pid is not None
    stopper = threading.Thread(target=pool.stop)
    with db.write_transaction(engine):
        thread, outcome = _training_in_thread(pool, settings)
        time.sleep(1.0)
        stopper.start()
        time.sleep(0.5)
    # The lock is released: the child leaves SQLite's wait and meets the SIGTERM.
    stopper.join(timeout=60)
    thread.join(timeout=60)
    assert not thread.is_alive() and not stopper.is_alive()
    assert isinstance(outcome[0], TrainingStopped), outcome
    _wait_dead(pid)
    assert _model_count(engine) == 0


class _Stream:
    """Stands in for KlineStream's close(); what is under test is Service.stop's order."""

    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def test_service_stop_ends_its_warm_child_even_when_the_stream_loop_has_closed(
    stored: tuple[Settings, Engine],
) -> None:
    import asyncio

    from candlecast.bootstrap import Services
    from candlecast.runtime import Runtime
    from candlecast.service import Service
    from candlecast.usecases.build import build_operations
    from tests.usecase_fakes import no_training

    settings, engine = stored
    services = Services(settings=settings, engine=engine)
    runtime = Runtime()
    operations = build_operations(services, runtime, trainer=no_training)
    service = Service(services, runtime, operations, scheduler=False)
    service.training.start()
    pid = service.training.pid
    assert pid is not None
    loop = asyncio.new_event_loop()
    loop.close()  # the stream thread ended first and closed its loop
    stream = _Stream()
    service.stream._stream, service.stream._loop = stream, loop  # type: ignore[assignment]
    service.stop()  # raised "Event loop is closed" before the fix
    _wait_dead(pid)
    assert not stream.closed
