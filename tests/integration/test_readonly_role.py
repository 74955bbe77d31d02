"""The read-only role: it logs in, reads every table (future ones too), and writes nowhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from candlecast.cli import app
from candlecast.domain import ConfigError, StoreError
from candlecast.store import db, roles
from tests.integration.readonly_support import (
    drop_role,
    load_day,
    new_role_name,
    role_url,
    scram_matches,
    stored_verifier,
)

PASSWORD = "first-Passw0rd-for-browsing"
# SQLSTATE 42501: insufficient_privilege. 25006: read_only_sql_transaction.
DENIED = "42501"
READ_ONLY = "25006"


@pytest.fixture
def pg_engine(database_url: str) -> Iterator[Engine]:
    """A migrated PostgreSQL engine; the SQLite variants skip before migrating anything."""
    if database_url.startswith("sqlite"):
        pytest.skip("not applicable: SQLite has no roles or privileges")
    engine = db.create_store_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def role(pg_engine: Engine) -> Iterator[str]:
    name = new_role_name()
    yield name
    drop_role(pg_engine, name)


def _connect(database_url: str, name: str, password: str) -> psycopg.Connection[tuple[object, ...]]:
    url = db.normalize_url(role_url(database_url, name, password))
    return psycopg.connect(
        host=url.host,
        port=url.port,
        dbname=url.database,
        user=name,
        password=password,
        options=str(url.query["options"]),
        autocommit=True,
    )


def _sqlstate(connection: psycopg.Connection[tuple[object, ...]], statement: str) -> str:
    try:
        connection.execute(statement)
    except psycopg.Error as exc:
        return str(exc.sqlstate)
    return "accepted"


def _fingerprint(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT count(*), sum(open_time), max(close::text) FROM candles")
        ).one()
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return (*row, version)


def _tables(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
                )
            ).scalars()
        )


def test_role_reads_every_table_and_future_ones(
    pg_engine: Engine, database_url: str, role: str
) -> None:
    last = load_day(pg_engine)
    made = roles.create_readonly_role(pg_engine, name=role, password=PASSWORD)
    assert made.created and made.owners == ("postgres",)
    tables = _tables(pg_engine)
    assert {"alembic_version", "candles", "job_runs", "forecasts"} <= set(tables)
    assert made.tables >= len(tables)
    # A later migration adds a table, as the same migrating role would.
    with pg_engine.begin() as connection:
        connection.execute(text("CREATE TABLE later_step (id serial PRIMARY KEY, note text)"))
        connection.execute(text("INSERT INTO later_step (note) VALUES ('added later')"))
    with _connect(database_url, role, PASSWORD) as browsing:
        assert browsing.execute("SELECT count(*), max(open_time) FROM candles").fetchone() == (
            288,
            last,
        )
        version = browsing.execute("SELECT version_num FROM alembic_version").fetchone()
        assert version == (db.head_revision(),)
        for table in tables:
            browsing.execute(f'SELECT count(*) FROM "{table}"')
        assert browsing.execute("SELECT note FROM later_step").fetchone() == ("added later",)
        # The role lands in candlecast's schema and reads in read-only transactions.
        assert browsing.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_role_writes_nowhere(pg_engine: Engine, database_url: str, role: str) -> None:
    load_day(pg_engine)
    roles.create_readonly_role(pg_engine, name=role, password=PASSWORD)
    before = _fingerprint(pg_engine)
    attempts = {
        "insert": "INSERT INTO candles SELECT symbol, interval, open_time + 1, open, high, low, "
        "close, volume, close_time, quote_volume, trades, taker_buy_base, taker_buy_quote, "
        "source, fetched_at FROM candles LIMIT 1",
        "update": "UPDATE candles SET close = 0",
        "delete": "DELETE FROM candles",
        "truncate": "TRUNCATE candles",
        "drop table": "DROP TABLE candles",
        "alter table": "ALTER TABLE candles ADD COLUMN extra int",
        "create table": "CREATE TABLE intruder (x int)",
        "create table in public": "CREATE TABLE public.intruder (x int)",
        "create schema": "CREATE SCHEMA intruder",
        "update alembic_version": "UPDATE alembic_version SET version_num = 'x'",
        "nextval": "SELECT nextval(pg_get_serial_sequence('job_runs', 'id'))",
        "grant to itself": "GRANT INSERT ON candles TO CURRENT_USER",
    }
    with _connect(database_url, role, PASSWORD) as browsing:
        # The session default refuses first; turn it off to show the privileges refuse too.
        assert _sqlstate(browsing, attempts["insert"]) == READ_ONLY
        browsing.execute("SET default_transaction_read_only = off")
        outcomes = {what: _sqlstate(browsing, sql) for what, sql in attempts.items()}
    # Depending on what the role holds, GRANT by a non-owner fails or only warns; either way
    # it must grant nothing (checked below).
    assert outcomes.pop("grant to itself") in {DENIED, "accepted"}
    assert outcomes == dict.fromkeys(outcomes, DENIED)
    assert _fingerprint(pg_engine) == before
    with _connect(database_url, role, PASSWORD) as browsing:
        browsing.execute("SET default_transaction_read_only = off")
        assert _sqlstate(browsing, attempts["insert"]) == DENIED


def test_the_command_twice_is_fine_and_rotates_the_password(
    pg_engine: Engine,
    database_url: str,
    role: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    runner = CliRunner()
    monkeypatch.setenv("CANDLECAST_READONLY_PASSWORD", PASSWORD)
    first = runner.invoke(app, ["db", "create-readonly-role", role])
    assert first.exit_code == 0, first.stderr
    assert f"read-only role {role} created" in first.stdout
    assert scram_matches(stored_verifier(pg_engine, role), PASSWORD)

    rotated = "second-Passw0rd-after-rotation"
    monkeypatch.setenv("BROWSE_PASSWORD", rotated)
    second = runner.invoke(
        app, ["db", "create-readonly-role", role, "--password-env", "BROWSE_PASSWORD"]
    )
    assert second.exit_code == 0, second.stderr
    assert f"read-only role {role} updated" in second.stdout
    verifier = stored_verifier(pg_engine, role)
    assert scram_matches(verifier, rotated) and not scram_matches(verifier, PASSWORD)
    for shown in (first.output, second.output, caplog.text):
        assert PASSWORD not in shown and rotated not in shown
    with _connect(database_url, role, rotated) as browsing:
        assert browsing.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_the_role_name_comes_from_the_settings(
    pg_engine: Engine, database_url: str, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    monkeypatch.setenv("CANDLECAST_READONLY_USER", role)
    monkeypatch.setenv("CANDLECAST_READONLY_PASSWORD", PASSWORD)
    result = CliRunner().invoke(app, ["db", "create-readonly-role"])
    assert result.exit_code == 0, result.stderr
    assert f"read-only role {role} created" in result.stdout


def test_missing_password_is_one_clear_line(
    pg_engine: Engine, database_url: str, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", database_url)
    monkeypatch.delenv("NO_SUCH_PASSWORD", raising=False)
    result = CliRunner().invoke(
        app, ["db", "create-readonly-role", role, "--password-env", "NO_SUCH_PASSWORD"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: set NO_SUCH_PASSWORD to the read-only role's password"


def test_roles_that_cannot_be_read_only_are_refused(pg_engine: Engine, role: str) -> None:
    with pytest.raises(ConfigError, match="the role this command connects as"):
        roles.create_readonly_role(pg_engine, name="postgres", password=PASSWORD)
    steps = [
        ([f'CREATE ROLE "{role}" LOGIN SUPERUSER'], "is a superuser"),
        (
            [f'ALTER ROLE "{role}" NOSUPERUSER', f'GRANT pg_write_all_data TO "{role}"'],
            "member of pg_write_all_data",
        ),
        (
            [
                f'REVOKE pg_write_all_data FROM "{role}"',
                "CREATE TABLE mine (x int)",
                f'ALTER TABLE mine OWNER TO "{role}"',
            ],
            "owns schema",
        ),
    ]
    for statements, refusal in steps:
        with pg_engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
        with pytest.raises(ConfigError, match=refusal):
            roles.create_readonly_role(pg_engine, name=role, password=PASSWORD)


def test_writes_granted_to_public_are_found_and_nothing_is_left_half_done(
    pg_engine: Engine, role: str
) -> None:
    with pg_engine.begin() as connection:
        connection.execute(text("GRANT INSERT ON candles TO PUBLIC"))
    with pytest.raises(StoreError, match="could still write candles"):
        roles.create_readonly_role(pg_engine, name=role, password=PASSWORD)
    with pg_engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM pg_roles WHERE rolname = :name"), {"name": role}
        ).scalar_one()
    assert left == 0


@pytest.mark.parametrize("name", ["Upper", "with-dash", "1digit", "pg_reader", "public", ""])
def test_role_names_are_validated(name: str) -> None:
    with pytest.raises(ConfigError):
        roles.validate_role_name(name)


def test_on_sqlite_the_command_fails_with_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDLECAST_DATABASE_URL", f"sqlite:///{tmp_path / 'candlecast.db'}")
    monkeypatch.setenv("CANDLECAST_READONLY_PASSWORD", PASSWORD)
    result = CliRunner().invoke(app, ["db", "create-readonly-role", "browser"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: create-readonly-role needs PostgreSQL")
    assert not (tmp_path / "candlecast.db").exists()
