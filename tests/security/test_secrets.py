"""Secrets stay secret: the generated token file is owner-only, a request with a wrong token
does not put either token in the logs, and /metrics shows no token, password or URL secret."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.runtime import Runtime
from candlecast.tokens import ensure_api_token
from tests.fuzz import states
from tests.integration.api_support import TOKEN

WRONG = "wrong-token-must-not-be-logged-5e1d"
READONLY_PASSWORD = "readonly-password-must-not-show-9c2b"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_generated_token_file_is_owner_only(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    old_umask = os.umask(0)  # the most permissive umask must not loosen it
    try:
        token, path = ensure_api_token(settings)
    finally:
        os.umask(old_umask)
    assert path is not None and path.read_text().strip() == token and len(token) >= 32
    assert _mode(path) == 0o600
    assert ensure_api_token(settings) == (token, path)  # kept, not regenerated


def test_a_token_file_found_readable_by_others_is_made_owner_only(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    token, path = ensure_api_token(settings)
    assert path is not None
    path.chmod(0o644)  # e.g. restored from a backup, or written by hand
    assert ensure_api_token(settings) == (token, path)
    assert _mode(path) == 0o600


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 with its access log on; yields the base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=True)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_requests_with_a_wrong_token_do_not_log_either_token(
    engine: Engine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = states.build_app(engine, database_url, now=0, access_log=True)
    posts = [path for method, path in states.routes(app) if method == "POST"]
    with caplog.at_level(logging.DEBUG), served(app) as base, httpx.Client(base_url=base) as http:
        for path in posts:
            for header in (f"Bearer {WRONG}", WRONG, f"Basic {TOKEN}", f"Bearer {TOKEN}{WRONG}"):
                response = http.post(path, headers={"Authorization": header})
                assert response.status_code == 401
                assert WRONG not in response.text and TOKEN not in response.text
        http.post("/api/train", json={"days": WRONG}, headers={"Authorization": WRONG})
    # The server's records only: httpx, the test's own client, logs the URLs it requests.
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in records)
    assert "401" in logged, "the access log saw the refused requests"
    assert WRONG not in logged and TOKEN not in logged


def test_metrics_expose_no_secret(engine: Engine, database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        api_token=TOKEN,
        readonly_user="browser",
        readonly_password=READONLY_PASSWORD,
    )
    client = TestClient(
        create_app(Services(settings=settings, engine=engine), Runtime()),
        raise_server_exceptions=False,
    )
    client.post("/api/ingest", headers={"Authorization": f"Bearer {WRONG}"})
    response = client.get("/metrics")
    assert response.status_code == 200 and "candlecast_" in response.text
    for secret in (TOKEN, WRONG, READONLY_PASSWORD, database_url):
        assert secret not in response.text
