"""Helpers for the read-only role tests: unique role names, their cleanup, SCRAM checks."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import uuid
from itertools import islice

from sqlalchemy import Engine, make_url, text

from candlecast.domain import parse_iso_utc
from candlecast.store import candle_rows
from candlecast.store import candles as store
from candlecast.store.db import write_transaction
from tests.shared_data import MAIN_CSV, shared_data_path

STEP = 300_000


def load_day(engine: Engine) -> int:
    """Stores the first day (288 candles) of the real BTCUSDT 5m fixture; returns the last time."""
    rows: list[candle_rows.CandleRow] = []
    with shared_data_path(MAIN_CSV).open(newline="") as handle:
        for row in islice(csv.DictReader(handle), 288):
            open_time = parse_iso_utc(row["open_time"])
            prices = (row["open"], row["high"], row["low"], row["close"], row["volume"])
            rows.append((open_time, *prices, open_time + STEP - 1, None, None, None, None))
    with write_transaction(engine) as connection:
        store.upsert_candles(
            connection, symbol="BTCUSDT", interval="5m", rows=rows, source="file", fetched_at=0
        )
    return rows[-1][0]


def new_role_name() -> str:
    # Roles are cluster-wide, unlike the throwaway schemas: each test needs its own.
    return f"ro_{uuid.uuid4().hex[:12]}"


def role_url(database_url: str, name: str, password: str) -> str:
    """The test database's URL (its search_path included), logging in as `name`."""
    url = make_url(database_url).set(username=name, password=password)
    return url.render_as_string(hide_password=False)


def drop_role(engine: Engine, name: str) -> None:
    """Removes the role and every privilege it holds in this database."""
    with engine.begin() as connection:
        exists = connection.execute(
            text("SELECT count(*) FROM pg_roles WHERE rolname = :name"), {"name": name}
        ).scalar_one()
        if exists:
            connection.execute(text(f'DROP OWNED BY "{name}"'))
            connection.execute(text(f'DROP ROLE "{name}"'))


def stored_verifier(engine: Engine, name: str) -> str:
    """The password verifier PostgreSQL keeps for the role (needs a superuser)."""
    with engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT rolpassword FROM pg_authid WHERE rolname = :name"), {"name": name}
            ).scalar_one()
        )


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier was made from this password (RFC 5802, RFC 7677)."""
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256", verifier
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))
