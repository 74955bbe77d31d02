"""Helpers shared by the benchmarks: the fake exchange as a process, databases, medians."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from candlecast.store import db

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CANDLECAST_SHARED_DATA", REPO.parent / "shared" / "data"))
POSTGRES_URL = os.environ.get(
    "CANDLECAST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def machine() -> str:
    """A one-line description of this machine."""
    python = platform.python_version()
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {python}"


def median(values: list[float]) -> float:
    """The median of several runs."""
    return statistics.median(values)


@contextmanager
def fake_exchange_process(csv: Path, start: str, speed: float = 0.0) -> Iterator[str]:
    """Runs tests.fake_exchange as its own process and yields its base URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fake_exchange",
            "--csv",
            str(csv),
            "--start",
            start,
            "--speed",
            str(speed),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the fake exchange did not start")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def scratch_database(kind: str, folder: Path) -> Iterator[str]:
    """An empty, migrated database URL: a SQLite file or a throwaway PostgreSQL schema."""
    if kind == "sqlite":
        path = folder / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        engine = db.create_store_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(db.normalize_url(POSTGRES_URL))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        db.normalize_url(POSTGRES_URL)
        .update_query_dict({"options": f"-c search_path={schema}"})
        .render_as_string(hide_password=False)
    )
    engine = db.create_store_engine(url)
    db.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
