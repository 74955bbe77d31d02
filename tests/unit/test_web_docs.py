"""The docs section: the path guard, Markdown rendering, and the /guide routes (no browser)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from candlecast.bootstrap import Services
from candlecast.config import Settings
from candlecast.web import mount
from candlecast.web.docs import MENU, Renderer, default_docs_dir, menu, safe_path

ESCAPES = [
    "../pyproject.toml",
    "..",
    "../../etc/passwd",
    "/etc/passwd",
    "..\\pyproject.toml",
    "sub/../../secret.md",
    ".hidden.md",
    "secret.md/..",
    "a" * 300 + ".md",
    "index.md\x00.svg",
    "index.MD.svg",
]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "index.md").write_text("# Welcome\n\nSee [the API](api.md#routes).\n")
    (folder / "api.md").write_text("# API\n\n## Routes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (folder / "diagram.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.md").write_text("# secret\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return folder


@pytest.mark.parametrize("name", ESCAPES)
def test_safe_path_refuses_names_that_could_leave_the_folder(docs: Path, name: str) -> None:
    assert safe_path(docs, name) is None


def test_safe_path_refuses_a_symlink_out_of_the_folder(docs: Path) -> None:
    os.symlink(docs.parent / "secret.md", docs / "link.md")
    assert safe_path(docs, "link.md") is None


def test_safe_path_finds_files_inside(docs: Path) -> None:
    assert safe_path(docs, "index.md") == (docs / "index.md").resolve()
    assert safe_path(docs, "diagram.svg") == (docs / "diagram.svg").resolve()
    assert safe_path(docs, "missing.md") is None


def test_rendering_adds_anchors_tables_and_rewrites_links() -> None:
    rendered = Renderer().render_text(
        "# Title\n\n## A section\n\n## A section\n\n"
        "[api](api.md#x) [ext](https://example.org) [up](../README.md)\n\n"
        "![d](architecture.svg)\n\n<script>alert(1)</script>\n\n"
        "| h |\n|---|\n| c |\n"
    )
    html = rendered["html"]
    assert rendered["title"] == "Title"
    assert [e["id"] for e in rendered["toc"]] == ["a-section", "a-section-2"]
    assert '<h2 id="a-section">' in html
    assert 'href="/guide/api#x"' in html
    assert 'href="https://example.org"' in html and 'rel="noopener"' in html
    assert 'href="../README.md"' in html  # not a docs page: left as written
    assert 'src="/guide/architecture.svg"' in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<table class="doc-table">' in html


def test_inline_code_may_wrap_after_separators_and_stays_escaped() -> None:
    html = Renderer().render_text("`/api/series?format=columns&max_points=2` `<b>`")["html"]
    code = html.split("<code>")[1].split("</code>")[0]
    assert code == "/<wbr>api/<wbr>series?<wbr>format=<wbr>columns&amp;<wbr>max_<wbr>points=<wbr>2"
    assert "<code>&lt;b&gt;</code>" in html


def test_menu_lists_known_pages_first_and_marks_missing_ones(docs: Path) -> None:
    (docs / "extra-notes.md").write_text("# Extra notes\n")
    items = menu(docs)
    assert [i["slug"] for i in items[: len(MENU)]] == [p.slug for p in MENU]
    present = {i["slug"]: i["present"] for i in items}
    assert present["index"] and present["api"] and not present["model"]
    assert items[-1] == {"slug": "extra-notes", "title": "Extra notes", "present": True}
    assert all(not i["present"] for i in menu(None))


def test_the_repository_docs_are_found_and_render() -> None:
    folder = default_docs_dir()
    assert folder is not None and (folder / "model.md").is_file()
    renderer = Renderer()
    for path in sorted(folder.glob("*.md")):
        assert renderer.render_file(path)["html"].strip(), path


def _client(docs_dir: Path | None, tmp_path: Path) -> TestClient:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    services = Services(settings=settings, engine=create_engine("sqlite://"))
    app = FastAPI()
    mount(app, services=services, docs_dir=docs_dir)
    return TestClient(app)


@pytest.mark.parametrize(
    "url",
    [
        "/guide/..%2fpyproject.toml",
        "/guide/%2e%2e%2fpyproject.toml",
        "/guide/%2e%2e/secret",
        "/guide/..%5csecret.md",
        "/guide/%2fetc%2fpasswd",
        "/guide/..%252fsecret",
        "/guide/sub/../../secret",
        "/guide/nothing-here",
    ],
)
def test_guide_routes_never_leave_the_docs_folder(docs: Path, tmp_path: Path, url: str) -> None:
    answer = _client(docs, tmp_path).get(url)
    assert answer.status_code == 404
    assert "[project]" not in answer.text and "# secret" not in answer.text


def test_guide_renders_pages_and_serves_the_diagram(docs: Path, tmp_path: Path) -> None:
    client = _client(docs, tmp_path)
    index = client.get("/guide")
    assert index.status_code == 200 and "<h1" in index.text and "Welcome" in index.text
    assert "content-security-policy" in index.headers
    page = client.get("/guide/api")
    assert page.status_code == 200 and '<table class="doc-table">' in page.text
    assert client.get("/guide/api.md").status_code == 200
    svg = client.get("/guide/diagram.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize("url", ["/guide", "/guide/", "/guide/index"])
def test_guide_index_answers_with_and_without_a_trailing_slash(
    docs: Path, tmp_path: Path, url: str
) -> None:
    answer = _client(docs, tmp_path).get(url, follow_redirects=False)
    assert answer.status_code == 200, url
    assert "Welcome" in answer.text


def test_guide_explains_a_missing_docs_folder(tmp_path: Path) -> None:
    answer = _client(tmp_path / "no-such-folder", tmp_path).get("/guide/model")
    assert answer.status_code == 200
    assert "No documentation folder" in answer.text


def test_plotly_is_served_from_the_package_with_a_long_cache(tmp_path: Path) -> None:
    client = _client(None, tmp_path)
    answer = client.get("/static/plotly.min.js?v=1", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert "max-age=31536000" in answer.headers["cache-control"]
    assert len(answer.content) > 1_000_000  # decoded by the client
    css = client.get("/static/css/app.css?v=abc")
    assert css.status_code == 200 and "immutable" in css.headers["cache-control"]
