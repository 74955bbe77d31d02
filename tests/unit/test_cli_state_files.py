"""Locks and generated tokens live in one state folder, with portable names."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from candlecast.bootstrap import bootstrap
from candlecast.config import Settings
from candlecast.domain import JobAlreadyRunning
from candlecast.store import db
from candlecast.store.locks import job_lock, lock_file_name, state_folder
from candlecast.tokens import ensure_api_token, token_path

PORTABLE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def test_the_state_folder_is_configured_or_beside_sqlite_or_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite = f"sqlite:///{tmp_path / 'candlecast.db'}"
    assert state_folder(sqlite) == tmp_path / "candlecast.db.state"
    assert state_folder(sqlite, tmp_path / "elsewhere") == tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)
    postgres = "postgresql://user@db.example/candlecast"
    assert state_folder(postgres) == tmp_path / "candlecast-state"
    assert state_folder("sqlite:///relative.db") == tmp_path / "relative.db.state"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("backfill:BTCUSDT:5m", "backfill-BTCUSDT-5m.lock"),
        ("train:ETHUSDT:1h", "train-ETHUSDT-1h.lock"),
        ("../../etc/passwd", "etc-passwd.lock"),
        ("a b\\c*d?", "a-b-c-d.lock"),
    ],
)
def test_lock_file_names_are_portable(name: str, expected: str) -> None:
    assert lock_file_name(name) == expected
    assert set(expected) <= PORTABLE


def test_sqlite_locks_sit_in_the_state_folder_not_beside_the_database(tmp_path: Path) -> None:
    engine = db.create_store_engine(f"sqlite:///{tmp_path / 'candlecast.db'}")
    try:
        with job_lock(engine, "backfill:BTCUSDT:5m"):
            held = tmp_path / "candlecast.db.state" / "backfill-BTCUSDT-5m.lock"
            assert held.is_file()
            with pytest.raises(JobAlreadyRunning), job_lock(engine, "backfill:BTCUSDT:5m"):
                pass
    finally:
        engine.dispose()
    beside = {path.name for path in tmp_path.iterdir()}
    assert not [name for name in beside if name.endswith(".lock") or ":" in name]
    assert stat.S_IMODE(os.stat(tmp_path / "candlecast.db.state").st_mode) == 0o700


def test_a_configured_state_dir_holds_the_locks(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'candlecast.db'}", state_dir=tmp_path / "state"
    )
    services = bootstrap(settings)
    try:
        with job_lock(services.engine, "train:BTCUSDT:5m"):
            assert (tmp_path / "state" / "train-BTCUSDT-5m.lock").is_file()
    finally:
        services.close()
    assert not (tmp_path / "candlecast.db.state").exists()


def test_a_generated_token_lives_in_the_state_folder_owner_only(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'candlecast.db'}", api_token=None)
    token, path = ensure_api_token(settings)
    assert path == token_path(settings) == tmp_path / "candlecast.db.state" / "api.token"
    assert path.read_text(encoding="utf-8").strip() == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_api_token(settings) == (token, path)  # generated once


def test_an_old_token_file_is_still_read_where_it_is(tmp_path: Path) -> None:
    old = tmp_path / "candlecast.db.token"
    old.write_text("an-old-token-that-clients-hold\n", encoding="utf-8")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'candlecast.db'}", api_token=None)
    assert ensure_api_token(settings) == ("an-old-token-that-clients-hold", old)
    assert not token_path(settings).exists()


def test_an_old_postgres_token_file_is_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "candlecast-api.token").write_text("x" * 20 + "\n", encoding="utf-8")
    settings = Settings(database_url="postgresql://u@h/d", api_token=None)
    assert ensure_api_token(settings) == ("x" * 20, tmp_path / "candlecast-api.token")
    (tmp_path / "candlecast-api.token").unlink()
    token, path = ensure_api_token(settings)
    assert path == tmp_path / "candlecast-state" / "api.token" and len(token) >= 16
