"""The dashboard under a path prefix (CANDLECAST_ROOT_PATH): every link, asset and script URL a
page or a rendered doc holds stays under the prefix. The browser side is tests/e2e/test_prefix.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.web import mount
from candlecast.web.docs import Renderer

PREFIX = "/candlecast"
PAGES = ("/", "/charts", "/forecasts", "/models", "/jobs", "/guide", "/guide/", "/guide/api")
_URL_ATTR = re.compile(r'\b(?:href|src|content)="([^"]*)"')


def _client(
    tmp_path: Path, *, root_path: str, adminer_url: str | None = None, configured: str = ""
) -> TestClient:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "index.md").write_text(
        "# Welcome\n\n[charts](/charts) [api](api.md#routes) [ext](https://example.org)\n"
    )
    (docs / "api.md").write_text("# API\n\n![d](diagram.svg) [home](index.md)\n")
    (docs / "diagram.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    config = Settings(
        database_url=f"sqlite:///{tmp_path / 'unused.db'}",
        adminer_url=adminer_url,
        root_path=configured,
    )
    services = Services(settings=config, engine=create_engine("sqlite://"))
    app = FastAPI()
    mount(app, services=services, docs_dir=docs)
    # As behind a proxy that strips the prefix: the server says it in the scope's root_path.
    return TestClient(app, root_path=root_path)


def _urls(html: str) -> list[str]:
    found: list[str] = []
    for value in _URL_ATTR.findall(html):
        found.extend(part for part in value.split() if part.startswith("/"))
    return found


@pytest.mark.parametrize("path", PAGES)
def test_every_page_url_stays_under_the_prefix(tmp_path: Path, path: str) -> None:
    answer = _client(tmp_path, root_path=PREFIX).get(path)
    assert answer.status_code == 200, path
    assert f'<meta name="candlecast-root" content="{PREFIX}">' in answer.text
    urls = _urls(answer.text)
    assert any(url.startswith(f"{PREFIX}/static/favicon.svg") for url in urls)
    outside = [url for url in urls if url != PREFIX and not url.startswith(PREFIX + "/")]
    assert not outside, (path, outside)


def test_prefetch_urls_are_left_for_the_script_to_prefix(tmp_path: Path) -> None:
    html = _client(tmp_path, root_path=PREFIX).get("/charts").text
    assert f'data-prefetch="{PREFIX}/api/' not in html  # common.js adds the prefix once


def test_rendered_docs_link_under_the_prefix(tmp_path: Path) -> None:
    client = _client(tmp_path, root_path=PREFIX)
    index = client.get("/guide").text
    assert f'href="{PREFIX}/charts"' in index
    assert f'href="{PREFIX}/guide/api#routes"' in index
    assert 'href="https://example.org"' in index
    page = client.get("/guide/api").text
    assert f'src="{PREFIX}/guide/diagram.svg"' in page
    assert f'href="{PREFIX}/guide/index"' in page
    assert client.get("/guide/diagram.svg").status_code == 200


def test_without_a_prefix_urls_are_site_absolute(tmp_path: Path) -> None:
    html = _client(tmp_path, root_path="").get("/").text
    assert '<meta name="candlecast-root" content="">' in html
    assert 'href="/charts"' in html and 'href="/static/css/app.css' in html


def test_the_configured_prefix_applies_when_the_server_sets_none(tmp_path: Path) -> None:
    html = _client(tmp_path, root_path="", configured=PREFIX).get("/models").text
    assert f'<meta name="candlecast-root" content="{PREFIX}">' in html
    assert f'href="{PREFIX}/charts"' in html


def test_renderer_caches_each_prefix_separately() -> None:
    renderer = Renderer()
    plain = renderer.render_text("[a](api.md) [b](/jobs)")["html"]
    prefixed = renderer.render_text("[a](api.md) [b](/jobs)", root="/p")["html"]
    assert 'href="/guide/api"' in plain and 'href="/jobs"' in plain
    assert 'href="/p/guide/api"' in prefixed and 'href="/p/jobs"' in prefixed
    assert (
        'href="//example.org/x"' in renderer.render_text("[c](//example.org/x)", root="/p")["html"]
    )


def test_nav_links_to_adminer_in_a_new_tab_when_configured(tmp_path: Path) -> None:
    url = "https://db.example.org/adminer/?pgsql=postgres&username=reader"
    html = _client(tmp_path, root_path="", adminer_url=url).get("/jobs").text
    link = re.search(r'<a href="([^"]*)"[^>]*>Database</a>', html)
    assert link is not None, "no Database link in the nav"
    assert link.group(1) == url.replace("&", "&amp;")
    anchor = link.group(0)
    assert 'target="_blank"' in anchor and 'rel="noopener"' in anchor


def test_nav_has_no_database_link_without_adminer(tmp_path: Path) -> None:
    html = _client(tmp_path, root_path="").get("/jobs").text
    assert ">Database</a>" not in html
