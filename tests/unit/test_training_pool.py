"""TrainingPool scheduling: up to `workers` children train at once, the others wait their turn,
one pair never trains twice at once, and stop() ends the waits as well as the trainings.

The children run tests.unit.pool_entries.meet, not LightGBM: these are tests of the pool, and
tests/integration/test_cli_training_pool.py covers the real training's life in a child.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import JobAlreadyRunning
from candlecast.jobs.isolated import TrainingPool, TrainingStopped
from candlecast.store import db
from tests.unit.pool_entries import meet


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", state_dir=tmp_path)


@pytest.fixture
def pools() -> Iterator[Callable[[int], TrainingPool]]:
    made: list[TrainingPool] = []

    def make(workers: int) -> TrainingPool:
        made.append(TrainingPool(workers, entry=meet))
        return made[-1]

    yield make
    for pool in made:
        pool.stop()


def _in_thread(call: Callable[[], dict[str, Any]]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _train(pool: TrainingPool, settings: Settings, symbol: str, wait: float) -> dict[str, Any]:
    return pool.train(settings, symbol=symbol, interval="5m", days=wait)


def _wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_workers_train_two_pairs_at_the_same_time(
    pools: Callable[[int], TrainingPool], settings: Settings
) -> None:
    pool = pools(2)
    first, first_out = _in_thread(lambda: _train(pool, settings, "BTCUSDT", 120))
    second, second_out = _in_thread(lambda: _train(pool, settings, "ETHUSDT", 120))
    first.join(timeout=180)
    second.join(timeout=180)
    a, b = first_out[0], second_out[0]
    assert a["met"] and b["met"], (a, b)  # each saw the other running
    assert a["pid"] != b["pid"] and sorted(pool.pids) == sorted([a["pid"], b["pid"]])


def test_one_worker_trains_pairs_one_after_the_other_in_one_child(
    pools: Callable[[int], TrainingPool], settings: Settings
) -> None:
    pool = pools(1)
    pool.start()
    first, first_out = _in_thread(lambda: _train(pool, settings, "BTCUSDT", 2))
    _wait_until(lambda: (settings.state_dir / "BTCUSDT-5m.started").exists())  # type: ignore[operator]
    second, second_out = _in_thread(lambda: _train(pool, settings, "ETHUSDT", 2))
    _wait_until(lambda: pool.waiting == 1)
    first.join(timeout=60)
    second.join(timeout=60)
    a, b = first_out[0], second_out[0]
    assert not a["met"] and a["ended"] <= b["started"], (a, b)
    assert a["pid"] == b["pid"] == pool.pid and pool.pids == [a["pid"]]


def test_a_pair_already_training_is_refused_while_other_pairs_are_not(
    pools: Callable[[int], TrainingPool], settings: Settings
) -> None:
    pool = pools(2)
    running, out = _in_thread(lambda: _train(pool, settings, "BTCUSDT", 120))
    _wait_until(lambda: (settings.state_dir / "BTCUSDT-5m.started").exists())  # type: ignore[operator]
    with pytest.raises(JobAlreadyRunning):
        _train(pool, settings, "BTCUSDT", 0)
    assert _train(pool, settings, "ETHUSDT", 120)["met"]
    running.join(timeout=60)
    assert out[0]["met"]


def test_stop_ends_the_training_and_the_waiting_one(
    pools: Callable[[int], TrainingPool], settings: Settings
) -> None:
    pool = pools(1)
    training, training_out = _in_thread(lambda: _train(pool, settings, "BTCUSDT", 600))
    _wait_until(lambda: (settings.state_dir / "BTCUSDT-5m.started").exists())  # type: ignore[operator]
    pid = pool.pid
    waiting, waiting_out = _in_thread(lambda: _train(pool, settings, "ETHUSDT", 600))
    _wait_until(lambda: pool.waiting == 1)
    assert pool.stop() == 1
    training.join(timeout=60)
    waiting.join(timeout=60)
    assert isinstance(training_out[0], TrainingStopped), training_out
    assert isinstance(waiting_out[0], TrainingStopped), waiting_out
    assert pid is not None and not _alive(pid) and pool.pids == []
    with pytest.raises(TrainingStopped):
        _train(pool, settings, "SOLUSDT", 0)


def test_children_start_as_trainings_need_them(
    pools: Callable[[int], TrainingPool], settings: Settings
) -> None:
    pool = pools(3)
    pool.start()
    assert len(pool.pids) == 1
    _train(pool, settings, "BTCUSDT", 0)
    assert len(pool.pids) == 1  # the warm child was free: no second one


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.05)
    return True


def test_services_own_one_pool_sized_by_the_settings(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}", train_workers=3)
    engine = db.create_store_engine(settings.database_url)
    first = Services(settings=settings, engine=engine)
    second = Services(settings=settings, engine=engine)
    assert first.training.workers == 3 and first.training is not second.training
    assert first.models is not second.models
    first.close()
    with pytest.raises(TrainingStopped):
        first.training.start()
    second.close()
