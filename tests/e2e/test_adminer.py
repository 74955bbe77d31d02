"""A real Adminer, logged in as the read-only role: it browses the candles and cannot write."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from candlecast.store import db, roles
from tests.conftest import _postgres_url
from tests.e2e.harness import free_port, wait_for
from tests.integration.readonly_support import drop_role, load_day, new_role_name

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

# Debian's `adminer` package: the single-file build is /usr/share/adminer/adminer.php (the
# adminer/ folder beside it holds the sources, which need compile.php to run).
ADMINER_DIR = Path("/usr/share/adminer")
ADMINER = ADMINER_DIR / "adminer.php"
PASSWORD = "browse-Passw0rd-for-adminer"
# The role's session default refuses first; with it turned off the privileges refuse too.
WRITE_ATTEMPTS = {
    "INSERT": "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume, "
    "close_time, source, fetched_at) VALUES ('BTCUSDT', '5m', 1, 1, 1, 1, 1, 1, 299999, "
    "'file', 0)",
    "UPDATE": "UPDATE candles SET close = 0",
    "DROP TABLE": "DROP TABLE candles",
}
PRIVILEGE_ERRORS = {
    "INSERT": "permission denied for table candles",
    "UPDATE": "permission denied for table candles",
    "DROP TABLE": "must be owner of table candles",
}


def _missing_adminer() -> str | None:
    php = shutil.which("php")
    if php is None:
        return "php is missing (apt-get install -y php-cli php-pgsql)"
    if not ADMINER.is_file():
        return f"{ADMINER} is missing (apt-get install -y adminer)"
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, check=False).stdout
    if "pgsql" not in modules.split():
        return "PHP's pgsql extension is missing (apt-get install -y php-pgsql)"
    return None


@dataclass
class Browsable:
    engine: Engine
    schema: str
    role: str
    server: str  # host:port as typed into Adminer's login form
    database: str


@pytest.fixture
def adminer_url(tmp_path: Path) -> Iterator[str]:
    """Adminer served by PHP's built-in server on a free port."""
    reason = _missing_adminer()
    if reason:
        pytest.skip(f"Adminer test skipped: {reason}")
    port = free_port()
    log = (tmp_path / "php.log").open("wb")
    php = subprocess.Popen(
        [
            "php",
            "-d",
            f"session.save_path={tmp_path}",
            # Adminer 4.8 predates PHP 8.2's deprecations; keep them out of the pages.
            "-d",
            "display_errors=0",
            "-S",
            f"127.0.0.1:{port}",
            "-t",
            str(ADMINER_DIR),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/adminer.php"

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(answers, timeout=15, what="PHP's built-in server with Adminer")
        yield url
    finally:
        php.terminate()
        php.wait(timeout=10)
        log.close()


@pytest.fixture
def browsable() -> Iterator[Browsable]:
    """A migrated throwaway schema with a day of real candles, and a read-only role on it."""
    base = db.normalize_url(_postgres_url())
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-c search_path={schema}"})
    engine = db.create_store_engine(url.render_as_string(hide_password=False))
    role = new_role_name()
    try:
        db.upgrade(engine)
        load_day(engine)
        roles.create_readonly_role(engine, name=role, password=PASSWORD)
        server = f"{base.host or '127.0.0.1'}:{base.port or 5432}"
        yield Browsable(engine, schema, role, server, base.database or "postgres")
    finally:
        drop_role(engine, role)
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _fingerprint(engine: Engine) -> tuple[object, ...]:
    with engine.connect() as connection:
        return tuple(
            connection.execute(
                text("SELECT count(*), sum(open_time), string_agg(close::text, ',') FROM candles")
            ).one()
        )


def _run_sql(page: Any, query: str) -> tuple[list[str], str]:
    """Submits a query on Adminer's SQL command page; returns its errors and the page text."""
    page.click("a[href$='&sql=']")
    page.wait_for_selector("text=SQL command")
    # Adminer hides the textarea behind its syntax-highlighting editor, which users type into.
    page.click("#form pre[contenteditable]")
    page.keyboard.insert_text(query)
    # The editor copies its text into the form's textarea on key-up.
    page.keyboard.press("End")
    with page.expect_navigation():
        page.click("input[type=submit][value=Execute]")
    content = page.inner_text("#content")
    return [error.inner_text() for error in page.query_selector_all("#content .error")], content


def test_the_read_only_user_browses_in_adminer_and_cannot_write(
    adminer_url: str, browsable: Browsable, context_factory: Any
) -> None:
    before = _fingerprint(browsable.engine)
    page = context_factory().new_page()
    page.set_default_timeout(15_000)
    # Adminer checks adminer.org for updates; the test stays on this machine.
    page.route(lambda url: not url.startswith("http://127.0.0.1"), lambda route: route.abort())

    page.goto(adminer_url)
    page.select_option("select[name='auth[driver]']", "pgsql")
    page.fill("input[name='auth[server]']", browsable.server)
    page.fill("input[name='auth[username]']", browsable.role)
    page.fill("input[name='auth[password]']", PASSWORD)
    page.fill("input[name='auth[db]']", browsable.database)
    page.click("input[type=submit][value=Login]")
    # The role's search_path opens Adminer on candlecast's schema.
    page.wait_for_selector(f"text=Schema: {browsable.schema}")
    assert not page.query_selector_all("#content .error")

    page.click("a[href$='&select=candles']")
    page.wait_for_selector("text=Select: candles")
    rows = page.query_selector_all("#content table.checkable tbody tr")
    assert len(rows) == 50  # Adminer's first page of the 288 candles
    assert "BTCUSDT" in rows[0].inner_text()

    for statement, query in WRITE_ATTEMPTS.items():
        errors, content = _run_sql(page, query)
        assert any("read-only transaction" in error for error in errors), content[:600]
        assert "Query executed OK" not in content, f"{statement} ran: {content[:600]}"
        errors, content = _run_sql(page, f"SET default_transaction_read_only = off; {query}")
        assert any(PRIVILEGE_ERRORS[statement] in error for error in errors), content[:600]
        # Only the SET ran.
        assert content.count("Query executed OK") == 1, f"{statement} ran: {content[:600]}"

    assert _fingerprint(browsable.engine) == before
    page.click("a[href$='&select=candles']")
    page.wait_for_selector("text=Select: candles")
    assert len(page.query_selector_all("#content table.checkable tbody tr")) == 50
