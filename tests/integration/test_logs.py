"""Logs: JSON lines or text with UTC times, no token or password in any line, quiet polling."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

from candlecast.logs import PollingAccessFilter, Redactor, setup_logging
from tests.e2e.harness import PrefixProxy, serve, wait_for

TOKEN = "log-test-token-7c1f0e9a5b2d4"
READONLY_PASSWORD = "Readonly-Pw-3141"
DB_PASSWORD = "Db-Pw-in-url-2718"
UTC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restores the root logger's handlers and level after a test that installs its own."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_redactor_masks_secrets_url_passwords_and_bearer_tokens() -> None:
    redact = Redactor([TOKEN, READONLY_PASSWORD, None, ""])
    text = redact(
        f"token {TOKEN}; role password {READONLY_PASSWORD}; "
        "url postgresql+psycopg://app:s3cr%40t@db:5432/prod; "
        "dsn host=db password=hunter22 user=app; header Authorization: Bearer abcdefgh12345"
    )
    for secret in (TOKEN, READONLY_PASSWORD, "s3cr%40t", "hunter22", "abcdefgh12345"):
        assert secret not in text
    assert "postgresql+psycopg://app:***@db:5432/prod" in text
    # Ordinary words stay readable.
    assert redact("the bearer token is in /tmp/x.token") == "the bearer token is in /tmp/x.token"


def test_json_lines_carry_utc_time_level_logger_message_extras(root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging(level=logging.INFO, log_format="json", secrets=[TOKEN], stream=stream)
    log = logging.getLogger("candlecast.test")
    log.info("started with %s", TOKEN, extra={"pair": "BTCUSDT:5m", "calls": 3})
    try:
        raise RuntimeError(f"failed at postgresql://u:{DB_PASSWORD}@h/db")
    except RuntimeError:
        log.exception("boom")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert UTC_TIME.match(first["time"]), first["time"]
    assert first["level"] == "INFO" and first["logger"] == "candlecast.test"
    assert first["message"] == "started with ***"
    assert first["pair"] == "BTCUSDT:5m" and first["calls"] == 3
    assert second["level"] == "ERROR" and "RuntimeError" in second["exception"]
    assert DB_PASSWORD not in stream.getvalue() and TOKEN not in stream.getvalue()


def test_text_lines_are_readable_with_utc_times(root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging(level=logging.INFO, stream=stream, secrets=[TOKEN])
    logging.getLogger("candlecast.test").warning("token %s rejected", TOKEN)
    line = stream.getvalue().strip()
    stamp, level, rest = line.split(" ", 2)
    assert UTC_TIME.match(stamp) and level == "WARNING"
    assert rest == "candlecast.test: token *** rejected"


def test_polling_routes_are_access_logged_at_debug_only() -> None:
    access = PollingAccessFilter("/candlecast")

    def record(path: str) -> logging.LogRecord:
        args = ("127.0.0.1:5000", "GET", path, "1.1", 200)
        return logging.LogRecord(
            "uvicorn.access", logging.INFO, "", 0, '%s "%s %s" %s %d', args, None
        )

    for path in ("/candlecast/api/version", "/api/health?symbol=BTCUSDT", "/candlecast/metrics"):
        polled = record(path)
        assert access.filter(polled) is False and polled.levelno == logging.DEBUG
    page = record("/candlecast/api/jobs")
    assert access.filter(page) is True and page.levelno == logging.INFO


def _with_password(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return database_url
    # The test server trusts local connections, so any password is accepted (and must be hidden).
    return url.set(password=DB_PASSWORD).render_as_string(hide_password=False)


def test_service_logs_hide_every_secret_and_say_where_things_are(
    fake_exchange: Any, tmp_path: Path, database_url: str
) -> None:
    fake = fake_exchange(start="2025-09-27T00:02:30Z", speed=60, ws_update_ms=200)
    url = _with_password(database_url)
    secrets = [TOKEN, READONLY_PASSWORD] + ([DB_PASSWORD] if DB_PASSWORD in url else [])
    settings = {
        "CANDLECAST_DATABASE_URL": url,
        "CANDLECAST_API_TOKEN": TOKEN,
        "CANDLECAST_READONLY_USER": "reader",
        "CANDLECAST_READONLY_PASSWORD": READONLY_PASSWORD,
        "CANDLECAST_LOG_FORMAT": "json",
        "CANDLECAST_ACCESS_LOG": "true",
        "CANDLECAST_ROOT_PATH": "/candlecast",
        "CANDLECAST_BACKFILL_DAYS": "2",
        "CANDLECAST_TRAIN_DAYS": "2",
    }
    with (
        serve(tmp_path, binance_url=fake.base_url, ws_url=fake.ws_url, **settings) as server,
        PrefixProxy(server.base_url, "/candlecast") as proxy,
    ):
        # Start-up has talked to the exchange and the database by the time backfill reports.
        wait_for(lambda: "candles inserted" in server.log(), timeout=60, what="the backfill")
        for path in ("/api/version", "/api/version", "/api/health", "/metrics", "/api/jobs"):
            httpx.get(proxy.base_url + path, timeout=10)
        # Secrets pasted into URLs reach the access log, which must mask them.
        for secret in secrets:
            httpx.get(proxy.base_url + f"/api/candles?symbol={secret}", timeout=10)
        wrong = {"Authorization": f"Bearer {TOKEN}-wrong"}
        bad = httpx.post(proxy.base_url + "/api/train", headers=wrong, timeout=10)
        assert bad.status_code == 401
        port = server.base_url.rsplit(":", 1)[1]
    log = server.log_path.read_text()

    for secret in secrets:
        assert secret not in log
    lines = [line for line in log.splitlines() if line.strip()]
    # Every line is JSON until shutdown. (A training child stopped mid-warm-up still prints a
    # raw traceback at exit; that is the training pool's to fix.)
    stop = next(i for i, line in enumerate(lines) if '"message": "Shutting down"' in line)
    entries = [json.loads(line) for line in lines[:stop]]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert UTC_TIME.match(entry["time"]), entry
    messages = [entry["message"] for entry in entries]
    assert f"candlecast serving on http://127.0.0.1:{port}/candlecast/" in messages
    assert "API token (for POST routes): CANDLECAST_API_TOKEN" in messages
    assert "pairs followed: BTCUSDT:5m" in messages
    data = next(m for m in messages if m.startswith("data: "))
    assert ("SQLite file" in data) or ("PostgreSQL database test on 127.0.0.1:5432" in data)
    access = [e["message"] for e in entries if e["logger"] == "uvicorn.access"]
    assert any('"POST /candlecast/api/train HTTP/1.1" 401' in line for line in access), access
    assert any('"GET /candlecast/api/jobs HTTP/1.1" 200' in line for line in access), access
    masked = [line for line in access if "/candlecast/api/candles?symbol=*** " in line]
    assert len(masked) == len(secrets), access
    for polled in ("/api/version", "/api/health", "/metrics"):
        assert not any(f"/candlecast{polled} " in line for line in access), access
