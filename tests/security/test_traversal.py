"""Path traversal under /guide (and /static) is refused with 404 or 400 and never reads a file
outside the docs folder, whatever the encoding. Requests are sent as raw ASGI paths, exactly as
a server passes them on, since HTTP clients would clean `..` out before sending."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.store import db
from candlecast.web import mount
from tests.fuzz import states
from tests.security.support import raw_get

SECRET = "TRAVERSAL-MARKER-7f3a"
ATTACKS = (
    b"/guide/../secret.md",
    b"/guide/../secret",
    b"/guide/..%2fsecret.md",
    b"/guide/%2e%2e/secret.md",
    b"/guide/%2e%2e%2fsecret.md",
    b"/guide/%2E%2E%2Fsecret.md",
    b"/guide/%252e%252e%252fsecret.md",
    b"/guide/..%5csecret.md",
    b"/guide/..\\secret.md",
    b"/guide/....//secret.md",
    b"/guide/./../secret.md",
    b"/guide/docs/../../secret.md",
    b"/guide/%c0%ae%c0%ae/secret.md",
    b"/guide/..%00/secret.md",
    b"/guide/secret.md%00.md",
    b"/guide//etc/passwd",
    b"/guide/%2fetc%2fpasswd",
    b"/guide/../../../../../../etc/passwd",
    b"/guide/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    b"/guide/file:///etc/passwd",
    b"/guide/C:%5cWindows%5cwin.ini",
    b"/guide/../secret.svg",
    b"/guide/%2e%2e%2fpicture.svg",
    b"/static/../secret.md",
    b"/static/%2e%2e%2fsecret.md",
    b"/static/..%2f..%2f..%2fetc%2fpasswd",
)


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    """One backend is enough: no request here reaches the database."""
    url = f"sqlite:///{tmp_path / 'traversal.db'}"
    engine = db.create_store_engine(url)
    db.upgrade(engine)
    yield engine, url
    engine.dispose()


@pytest.fixture
def docs_app(tmp_path: Path, sqlite: tuple[Engine, str]) -> FastAPI:
    """The dashboard over a docs folder whose parent holds a secret page and picture."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Docs\n\nThe index.\n", encoding="utf-8")
    (tmp_path / "secret.md").write_text(f"# Secret\n\n{SECRET}\n", encoding="utf-8")
    (tmp_path / "secret.svg").write_text(f"<svg>{SECRET}</svg>", encoding="utf-8")
    (tmp_path / "picture.svg").write_text(f"<svg>{SECRET}</svg>", encoding="utf-8")
    engine, url = sqlite
    services = Services(settings=Settings(database_url=url), engine=engine)
    app = FastAPI()
    mount(app, services=services, docs_dir=docs)
    return app


def test_traversal_out_of_the_docs_folder_is_refused(docs_app: FastAPI) -> None:
    assert raw_get(docs_app, b"/guide/index")[0] == 200
    leaked, accepted = [], []
    for attack in ATTACKS:
        status, body = raw_get(docs_app, attack)
        if SECRET.encode() in body or b"root:" in body:
            leaked.append(attack)
        if status not in (400, 404):
            accepted.append((attack, status))
    assert not leaked, f"read outside docs/: {leaked}"
    assert not accepted, f"not refused with 404/400: {accepted}"


def test_traversal_on_the_real_app_reads_nothing_outside_docs(sqlite: tuple[Engine, str]) -> None:
    """The app as served: pyproject.toml sits beside docs/, /etc/passwd is absolute."""
    app = states.build_app(*sqlite, now=0)
    for attack in (
        b"/guide/../pyproject.toml",
        b"/guide/%2e%2e%2fpyproject.toml",
        b"/guide/..%2fREADME.md",
        b"/guide/%2e%2e%2fREADME",
        b"/guide//etc/passwd",
        b"/guide/%2fetc%2fpasswd",
        b"/static/..%2f..%2f..%2f..%2fpyproject.toml",
    ):
        status, body = raw_get(app, attack)
        assert status in (400, 404), (attack, status)
        assert b"[project]" not in body and b"root:" not in body, attack
        assert b"candlecast keeps an" not in body, attack  # README's first line
