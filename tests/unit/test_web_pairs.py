"""Pages take `?symbol=&interval=`: the pair shown, the picker, links that keep the pair, a 404
page for a pair not followed, and the markets page. The browser side is tests/e2e/test_markets.py.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine

import candlecast.web
from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.domain import Pair
from candlecast.store import db
from candlecast.store import pairs as store_pairs
from candlecast.web import mount
from candlecast.web.pairs import FollowedPairs, PairNotShown

PAIR_PAGES = ("/", "/charts", "/forecasts", "/models", "/jobs")
THREE = ("BTCUSDT:5m", "ETHUSDT:5m", "BTCUSDT:1h")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    built = db.create_store_engine(f"sqlite:///{tmp_path / 'candlecast.db'}")
    db.upgrade(built)
    yield built
    built.dispose()


def _follow(engine: Engine, *names: str) -> None:
    with db.write_transaction(engine) as connection:
        for name in names:
            store_pairs.add(connection, Pair.parse(name), added_at=0)


def _client(engine: Engine, **settings: str) -> TestClient:
    config = Settings(database_url=str(engine.url), **settings)  # type: ignore[arg-type]
    app = FastAPI()
    mount(app, services=Services(settings=config, engine=engine), docs_dir=None)
    return TestClient(app)


def _nav_hrefs(html: str) -> list[str]:
    nav = re.search(r'<nav class="nav".*?</nav>', html, re.S)
    assert nav is not None
    return re.findall(r'href="([^"]*)"', nav.group(0))


@pytest.mark.parametrize("path", PAIR_PAGES)
def test_a_single_pair_looks_as_it_always_did(engine: Engine, path: str) -> None:
    _follow(engine, "BTCUSDT:5m")
    answer = _client(engine).get(path)
    assert answer.status_code == 200
    html = answer.text
    assert 'id="pair-picker"' not in html, "one pair: nothing to pick"
    assert ">Markets</a>" not in html
    assert "/charts" in _nav_hrefs(html) and not [h for h in _nav_hrefs(html) if "?" in h]
    assert 'data-symbol="BTCUSDT" data-interval="5m"' in html


@pytest.mark.parametrize("path", PAIR_PAGES)
def test_a_page_shows_the_pair_its_url_names(engine: Engine, path: str) -> None:
    _follow(engine, *THREE)
    html = _client(engine).get(path, params={"symbol": "ETHUSDT", "interval": "5m"}).text
    assert re.search(r"<title>[^<]*ETHUSDT 5m</title>", html), "the pair is in the title"
    assert '<span class="pair">ETHUSDT · 5m</span>' in html
    assert 'data-symbol="ETHUSDT" data-interval="5m"' in html
    options = re.findall(r'<option value="([^"]+)"( selected)?>', html)
    assert [value for value, _ in options] == list(THREE)
    assert [value for value, chosen in options if chosen] == ["ETHUSDT:5m"]
    hrefs = _nav_hrefs(html)
    assert "/markets?symbol=ETHUSDT&amp;interval=5m" in hrefs
    assert "/charts?symbol=ETHUSDT&amp;interval=5m" in hrefs
    assert "/guide?symbol=ETHUSDT&amp;interval=5m" in hrefs


def test_without_a_query_a_page_shows_the_first_followed_pair(engine: Engine) -> None:
    _follow(engine, "ETHUSDT:5m", "BTCUSDT:5m")
    html = _client(engine).get("/charts").text
    assert 'data-symbol="ETHUSDT" data-interval="5m"' in html
    # Several pairs: links carry the pair even when the URL did not name it.
    assert "/forecasts?symbol=ETHUSDT&amp;interval=5m" in _nav_hrefs(html)


def test_a_missing_part_is_the_default_pairs_and_symbols_are_case_blind(engine: Engine) -> None:
    _follow(engine, "BTCUSDT:1h", "ETHUSDT:1h")
    html = _client(engine).get("/", params={"symbol": "ethusdt"}).text
    assert 'data-symbol="ETHUSDT" data-interval="1h"' in html


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"symbol": "XRPUSDT", "interval": "5m"}, "XRPUSDT:5m is not a followed pair"),
        ({"symbol": "ETHUSDT", "interval": "1h"}, "ETHUSDT:1h is not a followed pair"),
        ({"symbol": "b$", "interval": "5m"}, "malformed symbol"),
        ({"symbol": "ETHUSDT", "interval": "7x"}, "unknown interval"),
    ],
)
@pytest.mark.parametrize("path", PAIR_PAGES)
def test_a_pair_not_followed_is_a_clear_404_page(
    engine: Engine, path: str, query: dict[str, str], says: str
) -> None:
    _follow(engine, *THREE)
    answer = _client(engine).get(path, params=query)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "Content-Security-Policy" in answer.headers
    assert says in answer.text.replace("&#39;", "'")
    # It offers the followed pairs, on the same page.
    for name in THREE:
        symbol, interval = name.split(":")
        assert f'href="{path}?symbol={symbol}&amp;interval={interval}"' in answer.text


def test_the_404_page_escapes_what_the_url_said(engine: Engine) -> None:
    _follow(engine, *THREE)
    answer = _client(engine).get("/", params={"symbol": "<script>x</script>"})
    assert answer.status_code == 404
    assert "<script>x" not in answer.text and "&lt;script&gt;" in answer.text


def test_markets_page_lists_every_pair_and_ignores_a_bad_pair(engine: Engine) -> None:
    _follow(engine, *THREE)
    client = _client(engine)
    for query in ({}, {"symbol": "XRPUSDT", "interval": "5m"}):
        answer = client.get("/markets", params=query)
        assert answer.status_code == 200
        html = answer.text
        assert 'id="markets"' in html and "/static/js/markets.js" in html
        assert 'aria-current="page">Markets</a>' in html
        assert 'id="pair-picker"' not in html, "the table is the picker here"
        assert len(re.findall(r'<th[^>]*data-sort="[a-z]+"', html)) == 8
    assert 'data-symbol="ETHUSDT"' in client.get("/markets?symbol=ETHUSDT&interval=5m").text


def test_the_guide_keeps_the_pair_for_its_links(engine: Engine) -> None:
    _follow(engine, *THREE)
    html = _client(engine).get("/guide?symbol=BTCUSDT&interval=1h").text
    assert "/jobs?symbol=BTCUSDT&amp;interval=1h" in _nav_hrefs(html)
    assert _client(engine).get("/guide?symbol=nope!").status_code == 200


def test_followed_pairs_are_reread_after_their_ttl(engine: Engine, tmp_path: Path) -> None:
    _follow(engine, "BTCUSDT:5m")
    now = {"t": 0.0}
    settings = Settings(database_url=str(engine.url))
    pairs = FollowedPairs(Services(settings=settings, engine=engine), clock=lambda: now["t"])
    assert pairs.get() == (Pair("BTCUSDT", "5m"),)
    _follow(engine, "ETHUSDT:5m")
    with pytest.raises(PairNotShown):
        pairs.resolve("ETHUSDT", "5m")  # still the list read a moment ago
    now["t"] += 1.5
    assert pairs.resolve("ETHUSDT", "5m").pair == Pair("ETHUSDT", "5m")


def test_without_a_pair_list_the_configured_pairs_stand_in(tmp_path: Path) -> None:
    """A database not migrated yet (or never seeded) still opens the pages."""
    settings = Settings(database_url="sqlite://", pairs="SOLUSDT:1m,ETHUSDT:1m")
    pairs = FollowedPairs(Services(settings=settings, engine=create_engine("sqlite://")))
    assert pairs.get() == (Pair("SOLUSDT", "1m"), Pair("ETHUSDT", "1m"))
    assert pairs.resolve(None, None).pair == Pair("SOLUSDT", "1m")


def test_web_imports_nothing_from_the_api_package() -> None:
    root = Path(candlecast.web.__file__).parent
    offending: list[str] = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(n == "candlecast.api" or n.startswith("candlecast.api.") for n in names):
                offending.append(f"{path.name}:{node.lineno}")
    assert not offending, offending
