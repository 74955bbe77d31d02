"""docs/api.md mentions every route the app serves, so the two stay in sync."""

from __future__ import annotations

from pathlib import Path

from candlecast.api import create_app
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.runtime import Runtime
from candlecast.store import db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_openapi_route_is_documented(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'docs.db'}"
    engine = db.create_store_engine(url)
    db.upgrade(engine)  # create_app seeds the followed pairs into the pairs table
    services = Services(settings=Settings(database_url=url), engine=engine)
    schema = create_app(services, Runtime()).openapi()
    text = DOCS.read_text()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
        if f"{method.upper()} {path}" not in text
    ]
    assert not missing, f"docs/api.md does not mention: {missing}"
    services.close()
