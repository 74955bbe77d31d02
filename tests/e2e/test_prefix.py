"""The whole dashboard under a path prefix, behind a reverse proxy that strips it.

`candlecast serve` runs with CANDLECAST_ROOT_PATH=/candlecast against the fake exchange; a small
aiohttp proxy serves it at http://127.0.0.1:PORT/candlecast and answers 404 for anything else,
as a Traefik strip-prefix rule would. Every request a page makes must stay under the prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from candlecast.domain import parse_iso_utc
from tests.e2e.harness import PageWatch, PrefixProxy, serve, wait_for, wait_ready
from tests.fake_exchange.server import FakeExchange
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.e2e

PREFIX = "/candlecast"
ADMINER = "http://127.0.0.1:9/adminer/"
DASHBOARD = (
    "/",
    "/charts",
    "/forecasts",
    "/models",
    "/jobs",
    "/guide",
    "/guide/",
    "/guide/architecture",
)
# Built by other parts of the app; they must live under the prefix as well.
OTHER = ("/api/docs", "/metrics")


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[PrefixProxy]:
    """The service with a model and forecasts, reachable only through the prefix proxy."""
    fake = FakeExchange(
        csv_path=shared_data_path(MAIN_CSV),
        start_ms=parse_iso_utc("2025-09-20T12:02:30Z"),
        speed=60.0,
        ws_update_ms=100,
    ).start()
    try:
        with (
            serve(
                tmp_path_factory.mktemp("prefix"),
                binance_url=fake.base_url,
                ws_url=fake.ws_url,
                CANDLECAST_ROOT_PATH=PREFIX,
                CANDLECAST_ADMINER_URL=ADMINER,
            ) as server,
            PrefixProxy(server.base_url, PREFIX) as proxy,
        ):

            def ready() -> bool:
                return server.get("/api/forecast").status_code == 200

            wait_for(ready, timeout=90, what=f"a model and a forecast\n{server.log()}")
            yield proxy
    finally:
        fake.stop()


def _visit(context: Any, proxy: PrefixProxy, path: str) -> tuple[Any, PageWatch, list[str]]:
    page = context.new_page()
    watch = PageWatch()
    watch.attach(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    answer = page.goto(proxy.base_url + path)
    assert answer is not None and answer.status == 200, (path, answer and answer.status)
    if path in DASHBOARD:
        wait_ready(page)
    elif path == "/api/docs":
        page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(2500)  # at least one live-update poll
    return page, watch, requested


def _outside(urls: list[str], base: str) -> list[str]:
    return [
        url
        for url in urls
        if not url.startswith(("data:", "blob:")) and url != base and not url.startswith(base + "/")
    ]


@pytest.mark.parametrize("path", DASHBOARD + OTHER)
def test_every_request_stays_under_the_prefix(
    proxied: PrefixProxy, context_factory: Any, path: str
) -> None:
    page, watch, requested = _visit(context_factory(), proxied, path)
    assert not watch.problems, (path, watch.problems)
    assert requested, path
    assert not _outside(requested, proxied.base_url), (path, _outside(requested, proxied.base_url))
    assert not proxied.outside, (path, proxied.outside)
    if path in DASHBOARD:
        # Every link a page offers stays under the prefix, save the Adminer one (a new tab).
        links: list[dict[str, str]] = page.evaluate(
            """() => Array.from(document.querySelectorAll('a[href]')).map((a) => ({
                 href: a.href, target: a.target, text: a.textContent.trim() }))"""
        )
        stray = [
            link
            for link in links
            if link["href"] != ADMINER and _outside([link["href"].split("#")[0]], proxied.base_url)
        ]
        assert not stray, (path, stray)
        database = [link for link in links if link["text"] == "Database"]
        assert database == [{"href": ADMINER, "target": "_blank", "text": "Database"}], path
    page.close()


def test_nav_links_lead_to_working_pages(proxied: PrefixProxy, context_factory: Any) -> None:
    page, watch, requested = _visit(context_factory(), proxied, "/")
    hrefs: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('.nav a:not([target])')).map((a) => a.href)"
    )
    assert len(hrefs) >= 7, hrefs
    for href in hrefs:
        watch.navigating = True
        answer = page.goto(href)
        watch.navigating = False
        assert answer is not None and answer.status == 200, href
    assert not watch.problems, watch.problems
    assert not _outside(requested, proxied.base_url), _outside(requested, proxied.base_url)


def test_the_proxy_refuses_paths_outside_the_prefix(proxied: PrefixProxy) -> None:
    import httpx

    origin = proxied.base_url.removesuffix(PREFIX)
    before = len(proxied.outside)
    assert httpx.get(origin + "/charts", timeout=10).status_code == 404
    assert httpx.get(proxied.base_url + "/charts", timeout=10).status_code == 200
    assert len(proxied.outside) == before + 1
    del proxied.outside[before:]
