"""Every page, under a path prefix behind a reverse proxy that strips it, at phone and desktop
widths in both themes.

The package's `live` service runs with CANDLECAST_ROOT_PATH=/candlecast; a small aiohttp proxy
serves it at http://127.0.0.1:PORT/candlecast and answers 404 for anything else, as a Traefik
strip-prefix rule would. Every request a page makes must stay under the prefix, and every page
must fit its width: no sideways scrolling, no nav entry or table cut off.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.harness import ADMINER_URL, Live, PageWatch, layout_problems, shoot, wait_ready

pytestmark = pytest.mark.e2e

PREFIX = "/candlecast"
# /guide/benchmarks: the docs' widest tables. (/guide/ and the docs' image are checked in
# tests/unit/test_web_prefix.py and test_dashboard.py.)
DASHBOARD = ("/", "/charts", "/forecasts", "/models", "/jobs", "/guide", "/guide/benchmarks")
# Served by other parts of the app; they must live under the prefix as well.
OTHER = ("/api/docs", "/metrics")


def _visit(context: Any, live: Live, path: str) -> tuple[Any, PageWatch, list[str]]:
    live.proxy.outside.clear()  # what reached the proxy outside the prefix, for this page only
    page = context.new_page()
    watch = PageWatch()
    watch.attach(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    answer = page.goto(live.base_url + path)
    assert answer is not None and answer.status == 200, (path, answer and answer.status)
    if path in DASHBOARD:
        wait_ready(page)  # every read the page makes is answered by then
        page.wait_for_timeout(300)
    else:
        if path == "/api/docs":
            page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
        page.wait_for_load_state("networkidle")
    return page, watch, requested


def _outside(urls: list[str], base: str) -> list[str]:
    inside = (base + "/", base + "?", "data:", "blob:")
    return [url for url in urls if url != base and not url.startswith(inside)]


def _name(path: str, width: int, theme: str) -> str:
    return f"prefix-{path.strip('/').replace('/', '-') or 'overview'}-{width}-{theme}"


@pytest.mark.parametrize(("width", "theme"), [(1280, "light"), (375, "dark")])
def test_every_page_stays_under_the_prefix_and_fits(
    live: Live, context_factory: Any, width: int, theme: str
) -> None:
    context = context_factory(width=width, theme=theme)
    # The other parts' pages are checked for the prefix once; their layout is not ours.
    for path in DASHBOARD + (OTHER if width == 1280 else ()):
        page, watch, requested = _visit(context, live, path)
        if path == "/metrics":
            _forgive_the_browsers_own_favicon(page, live, watch)
        assert not watch.problems, (path, watch.problems)
        assert requested, path
        stray = _outside(requested, live.base_url)
        assert not stray, (path, stray)
        assert not live.proxy.outside, (path, live.proxy.outside)
        if path in DASHBOARD:
            shoot(page, _name(path, width, theme))
            assert not layout_problems(page), (path, width, layout_problems(page))
            empty = page.locator(".empty").all_inner_texts()
            assert not empty, (path, empty)
            _assert_links_stay_under(page, live.base_url, path)
        page.close()


def _forgive_the_browsers_own_favicon(page: Any, live: Live, watch: PageWatch) -> None:
    """/metrics is plain text, so it cannot name an icon: Chromium then asks for /favicon.ico
    at the host's root by itself. That request is the browser's, not the page's; under a
    prefix it gets the 404 the proxy gives anything outside. Nothing else is forgiven."""
    for _ in range(15):  # it may come a moment after the page has loaded
        if live.proxy.outside:
            break
        page.wait_for_timeout(100)
    if live.proxy.outside == ["/favicon.ico"]:
        live.proxy.outside.clear()
        missing = (
            "console error: Failed to load resource: the server responded with a status of 404"
        )
        watch.problems = [p for p in watch.problems if not p.startswith(missing)]


def _assert_links_stay_under(page: Any, base: str, path: str) -> None:
    links: list[dict[str, str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('a[href]')).map((a) => ({
             href: a.href, target: a.target, text: a.textContent.trim() }))"""
    )
    # Every link stays under the prefix, save the Adminer one, which opens a new tab.
    stray = [
        link
        for link in links
        if link["href"] != ADMINER_URL and _outside([link["href"].split("#")[0]], base)
    ]
    assert not stray, (path, stray)
    database = [link for link in links if link["text"] == "Database"]
    assert database == [{"href": ADMINER_URL, "target": "_blank", "text": "Database"}], path


def test_every_doc_page_fits_a_phone(live: Live, context_factory: Any) -> None:
    """The docs change often: every page in the docs menu, at 375 px, in one tab."""
    page, watch, requested = _visit(context_factory(width=375), live, "/guide")
    hrefs: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('.side ul a:not(.missing)')).map((a) => a.href)"
    )
    docs = [href for href in hrefs if "/guide" in href]
    assert len(docs) >= 6, hrefs
    for href in docs:
        watch.navigating = True
        answer = page.goto(href)
        watch.navigating = False
        assert answer is not None and answer.status == 200, href
        assert not layout_problems(page), (href, layout_problems(page))
    assert not watch.problems, watch.problems
    assert not _outside(requested, live.base_url), _outside(requested, live.base_url)


def test_nav_links_lead_to_working_pages(live: Live, context_factory: Any) -> None:
    page, watch, _ = _visit(context_factory(), live, "/")
    hrefs: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('.nav a:not([target])')).map((a) => a.href)"
    )
    assert len(hrefs) >= 7, hrefs
    for href in hrefs:  # each page itself is rendered and checked above
        assert href.startswith(live.base_url + "/"), href
        assert httpx.get(href, timeout=10).status_code == 200, href
    assert not watch.problems, watch.problems
    assert not live.proxy.outside, live.proxy.outside


def test_the_proxy_refuses_paths_outside_the_prefix(live: Live) -> None:
    origin = live.base_url.removesuffix(PREFIX)
    before = len(live.proxy.outside)
    assert httpx.get(origin + "/charts", timeout=10).status_code == 404
    assert httpx.get(live.base_url + "/charts", timeout=10).status_code == 200
    assert len(live.proxy.outside) == before + 1
    del live.proxy.outside[before:]
