"""In-memory SQLite job locks live in a table its engine carries (store.locks.configure, which
Services does): one engine's locks exclude each other, another engine's are its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import ConfigError, JobAlreadyRunning
from candlecast.store import locks
from candlecast.store.locks import job_lock


def test_an_in_memory_engine_carries_its_own_locks() -> None:
    first, second = create_engine("sqlite://"), create_engine("sqlite://")
    locks.configure(first)
    locks.configure(second)
    table = locks.lock_table(first)
    assert table is not None and table is not locks.lock_table(second)
    locks.configure(first)  # again: the table (and the locks held in it) stays
    assert locks.lock_table(first) is table
    with job_lock(first, "train:BTCUSDT:5m"):
        with pytest.raises(JobAlreadyRunning), job_lock(first, "train:BTCUSDT:5m"):
            pass
        with job_lock(second, "train:BTCUSDT:5m"), job_lock(first, "train:ETHUSDT:5m"):
            pass
    with job_lock(first, "train:BTCUSDT:5m"):
        pass


def test_an_unconfigured_in_memory_engine_is_refused_rather_than_unlocked() -> None:
    with pytest.raises(ConfigError), job_lock(create_engine("sqlite://"), "train:X"):
        pass


def test_services_configure_their_engine(tmp_path: Path) -> None:
    engine = create_engine("sqlite://")
    Services(settings=Settings(database_url="sqlite://", state_dir=tmp_path), engine=engine)
    assert locks.lock_table(engine) is not None
    assert engine.get_execution_options()[locks.STATE_DIR_OPTION] == str(tmp_path)
    file_engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    locks.configure(file_engine)
    assert locks.lock_table(file_engine) is None  # a file's locks are flocks, across processes
