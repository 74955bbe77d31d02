"""The dashboard in a real browser, against `candlecast serve` and the fake exchange at 60x.

A 5m candle closes every 5 s. One server (backfill, first model, live stream) serves the tests
of this module; the empty states get servers of their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from candlecast.domain import parse_iso_utc
from tests.e2e.harness import PAGES, PageWatch, Server, serve, shoot, wait_for, wait_ready
from tests.fake_exchange.server import FakeExchange
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.e2e

START = "2025-09-20T12:02:30Z"
SPEED = 60.0


def _name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "overview"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    """A server that has backfilled, trained and forecast, following the live stream."""
    fake = FakeExchange(
        csv_path=shared_data_path(MAIN_CSV), start_ms=parse_iso_utc(START), speed=SPEED,
        ws_update_ms=100,
    ).start()  # fmt: skip
    try:
        with serve(tmp_path_factory.mktemp("live"), binance_url=fake.base_url,
                   ws_url=fake.ws_url) as server:  # fmt: skip

            def ready() -> bool:
                return server.get("/api/forecast").status_code == 200

            wait_for(ready, timeout=90, what=f"a model and a forecast\n{server.log()}")
            yield server
    finally:
        fake.stop()


def _open(context: Any, server: Server, path: str) -> tuple[Any, PageWatch]:
    page = context.new_page()
    watch = PageWatch()
    watch.attach(page)
    page.goto(server.base_url + path)
    wait_ready(page)
    page.wait_for_timeout(300)
    return page, watch


@pytest.mark.parametrize("width", [1280, 375])
def test_every_page_loads_cleanly(live: Server, context_factory: Any, width: int) -> None:
    context = context_factory(width=width)
    for path in PAGES:
        page, watch = _open(context, live, path)
        shoot(page, f"{_name(path)}-{width}")
        assert not watch.problems, (path, watch.problems)
        assert page.locator(".empty").count() == 0, (path, page.locator(".empty").all_inner_texts())
        # No horizontal scrolling of the page itself on a phone (tables scroll in their box).
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, width, overflow)
        page.close()


def test_dark_theme_is_remembered(live: Server, context_factory: Any) -> None:
    context = context_factory(theme="dark")
    page, watch = _open(context, live, "/charts")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    shoot(page, "charts-1280-dark")
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    watch.navigating = True
    page.reload()
    wait_ready(page)
    watch.navigating = False
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert not watch.problems, watch.problems


def test_charts_hold_the_served_points(live: Server, context_factory: Any) -> None:
    page, watch = _open(context_factory(), live, "/charts#7d")
    for days in (7, 1):
        if days == 1:
            page.click("#range button[data-days='1']")
            wait_for(lambda: page.evaluate("location.hash") == "#1d", timeout=5, what="1 d")
            page.wait_for_timeout(1500)
        series = live.get(f"/api/series?format=columns&fallback_days={days}&max_points=1500").json()
        real = page.evaluate("document.getElementById('chart-candles').data[0].x.length")
        pred = page.evaluate("document.getElementById('chart-candles').data[1].x.length")
        close = page.evaluate("document.getElementById('chart-close').data[0].x.length")
        # A candle may close between the page's read and ours: at most one point apart.
        assert abs(real - series["count"]) <= 1, (days, real, series["count"])
        assert real == pred == close
        assert real <= 1500
    assert series["count"] == 288 or series["count"] >= 280
    assert not watch.problems, watch.problems


def test_forecast_shown_equals_the_api(live: Server, context_factory: Any) -> None:
    page, watch = _open(context_factory(), live, "/")

    def shown() -> dict[str, Any]:
        values: dict[str, Any] = page.evaluate(
            """() => ({
              close: Number(document.getElementById('fc-close').dataset.value),
              lo: Number(document.getElementById('fc-interval').dataset.lo),
              hi: Number(document.getElementById('fc-interval').dataset.hi),
              prob: Number(document.getElementById('fc-prob').dataset.value),
              model: Number(document.getElementById('fc-model').dataset.value),
              target: document.getElementById('fc-target').dataset.value,
            })"""
        )
        return values

    matched = False
    for _ in range(10):  # a new forecast lands every 5 s; compare one that holds still
        api = live.get("/api/forecast").json()
        seen = shown()
        if seen["target"] == api["target_time"]:
            assert math.isclose(seen["close"], api["close"], rel_tol=1e-12)
            assert math.isclose(seen["lo"], api["close_lo"], rel_tol=1e-12)
            assert math.isclose(seen["hi"], api["close_hi"], rel_tol=1e-12)
            assert math.isclose(seen["prob"], api["prob_up"], rel_tol=1e-12)
            assert seen["model"] == api["model_id"]
            matched = True
            break
        page.wait_for_timeout(700)
    assert matched, "the Overview never showed the forecast /api/forecast served"
    assert not watch.problems, watch.problems


def test_new_candle_appears_without_reload(live: Server, context_factory: Any) -> None:
    page, watch = _open(context_factory(), live, "/")
    first = page.evaluate("document.getElementById('last-time').dataset.time")
    page.evaluate("window.__sameDocument = true")
    wait_for(
        lambda: page.evaluate("document.getElementById('last-time').dataset.time") != first,
        timeout=30,
        what="a new candle on the Overview",
    )
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    newer = int(page.evaluate("document.getElementById('last-time').dataset.time"))
    assert newer > int(first)
    assert not watch.problems, watch.problems


def test_docs_render_and_cannot_escape(live: Server, context_factory: Any) -> None:
    page, watch = _open(context_factory(), live, "/guide/architecture")
    assert page.locator("article.doc h1").count() == 1
    assert page.locator("article.doc img[src$='architecture.svg']").count() == 1
    natural = page.evaluate('document.querySelector("article.doc img").naturalWidth')
    assert natural > 0, "the architecture diagram did not load"
    assert not watch.problems, watch.problems
    for probe in ("/guide/..%2f..%2fpyproject.toml", "/guide/%2e%2e/README.md",
                  "/guide/..%5c..%5cpyproject.toml", "/guide/%2fetc%2fpasswd"):  # fmt: skip
        answer = live.get(probe)
        assert answer.status_code == 404, probe
        assert "[project]" not in answer.text and "root:" not in answer.text


def _empty_states(server: Server, context_factory: Any, label: str, expect: str) -> None:
    for width in (1280, 375):
        context = context_factory(width=width)
        for path in PAGES[:5]:
            page, watch = _open(context, server, path)
            shoot(page, f"empty-{label}-{_name(path)}-{width}")
            assert not watch.problems, (path, watch.problems)
            text = page.inner_text("main")
            assert expect in text, (path, text[:600])
            assert "Traceback" not in text
            page.close()


def test_empty_states_with_the_exchange_down(tmp_path: Path, context_factory: Any) -> None:
    from tests.e2e.harness import free_port

    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    with serve(tmp_path, binance_url=f"http://{closed}", ws_url=f"ws://{closed}") as server:

        def failed_once() -> bool:
            runs = server.get("/api/jobs").json()["runs"]
            return any(run["status"] == "failed" for run in runs)

        wait_for(failed_once, timeout=60, what="a failed backfill")
        _empty_states(server, context_factory, "exchange-down", "exchange is unreachable")


def test_empty_states_without_a_model(tmp_path: Path, context_factory: Any) -> None:
    fake = FakeExchange(
        csv_path=shared_data_path(MAIN_CSV), start_ms=parse_iso_utc(START), speed=SPEED
    ).start()
    try:
        # One day of candles is too little to train on: data, but no model.
        with serve(tmp_path, binance_url=fake.base_url, ws_url=fake.ws_url,
                   CANDLECAST_BACKFILL_DAYS="1", CANDLECAST_TRAIN_DAYS="1") as server:  # fmt: skip

            def trained_or_failed() -> bool:
                runs = server.get("/api/jobs").json()["runs"]
                return any(run["name"] == "train" and run["status"] != "running" for run in runs)

            wait_for(trained_or_failed, timeout=60, what="the first training to give up")
            context = context_factory()
            for path in ("/", "/models", "/forecasts", "/charts"):
                page, watch = _open(context, server, path)
                shoot(page, f"empty-no-model-{_name(path)}-1280")
                assert not watch.problems, (path, watch.problems)
                assert "No model yet" in page.inner_text("main") or "No forecasts" in (
                    page.inner_text("main")
                ), path
                page.close()
    finally:
        fake.stop()
