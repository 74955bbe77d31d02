"""The dashboard in a real browser, against `candlecast serve` and the fake exchange at 60x.

A 5m candle closes every 5 s. The package's `live` service (backfill, first model, live stream,
under /candlecast behind a stripping proxy) serves the tests with data; the empty states get
servers of their own. Every page at both widths and in both themes, with its layout and every
request it makes, is checked in test_prefix.py.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import pytest

from candlecast.domain import parse_iso_utc
from tests.e2e.harness import (
    LIVE_START,
    PAGES,
    Live,
    PageWatch,
    Server,
    free_port,
    layout_problems,
    serve,
    shoot,
    wait_for,
    wait_ready,
)
from tests.fake_exchange.server import FakeExchange
from tests.shared_data import MAIN_CSV, shared_data_path

pytestmark = pytest.mark.e2e

SPEED = 60.0


def _name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "overview"


def _open(context: Any, server: Server | Live, path: str) -> tuple[Any, PageWatch]:
    page = context.new_page()
    watch = PageWatch()
    watch.attach(page)
    page.goto(server.base_url + path)
    wait_ready(page)
    page.wait_for_timeout(300)
    return page, watch


def test_dark_theme_is_remembered(live: Live, context_factory: Any) -> None:
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


def test_charts_hold_the_served_points(live: Live, context_factory: Any) -> None:
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
        _validation_is_explained(live, page, series)
    assert series["count"] == 288 or series["count"] >= 280
    assert not watch.problems, watch.problems


def _validation_is_explained(live: Live, page: Any, series: dict[str, Any]) -> None:
    """Shading only where the validation period splits the window, and words either way; the
    close caption says when the model's close is persistence's. With 7 days of candles the
    1 d window lies inside the validation period and the 7 d window straddles it."""
    metrics = live.get("/api/metrics").json()
    start = parse_iso_utc(metrics["validation_start"])
    shapes = page.evaluate("(document.getElementById('chart-candles').layout.shapes || []).length")
    note = page.inner_text("#shade-note")
    if start <= series["time"][0]:
        assert shapes == 0, "a full-window block highlights nothing"
        assert "All of this window is out of sample" in note, note
    else:
        assert shapes == 1
        assert "The shaded part" in note and "never trained" in note, note
    names = page.evaluate("document.getElementById('chart-close').data.map((t) => t.name)")
    caption = page.inner_text("#close-note")
    if metrics["validation"]["close"]["weight"] == 0:
        assert "gated to persistence" in caption and "coincide" in caption, caption
        assert names == ["real close", "predicted = persistence"], names
    else:
        assert "gated to persistence" not in caption, caption


def test_forecast_shown_equals_the_api(live: Live, context_factory: Any) -> None:
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


def test_new_candle_appears_without_reload(live: Live, context_factory: Any) -> None:
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


def test_ages_read_the_exchange_clock(live: Live, context_factory: Any) -> None:
    """The replayed exchange lives in 2025 while the host does not, and this browser's clock
    is five hours ahead of both: the Overview still says the last candle closed minutes ago."""
    context = context_factory()
    page = context.new_page()
    page.clock.set_system_time(time.time() + 5 * 3600)
    watch = PageWatch()
    watch.attach(page)
    page.goto(live.base_url + "/")
    wait_ready(page)
    assert page.get_attribute("#live", "data-state") == "live"
    wait_for(lambda: "closed" in page.inner_text("#last-age"), timeout=10, what="an age")
    age = page.inner_text("#last-age")
    # At 60x a virtual minute passes every real second, so allow a few candles of drift.
    match = re.fullmatch(r"closed (in )?(\d+) (s|min)( ago)?", age)
    assert match is not None, age
    assert match.group(3) == "s" or int(match.group(2)) <= 30, age
    assert not watch.problems, watch.problems


def test_docs_render_and_cannot_escape(live: Live, context_factory: Any) -> None:
    page, watch = _open(context_factory(), live, "/guide/architecture")
    assert page.locator("article.doc h1").count() == 1
    assert page.locator("article.doc img[src$='architecture.svg']").count() == 1
    natural = page.evaluate('document.querySelector("article.doc img").naturalWidth')
    assert natural > 0, "the architecture diagram did not load"
    assert not watch.problems, watch.problems
    probes = (
        "/guide/..%2f..%2fpyproject.toml",
        "/guide/%2e%2e/README.md",
        "/guide/..%5c..%5cpyproject.toml",
        "/guide/%2fetc%2fpasswd",
    )
    for probe in probes:
        answer = live.server.get(probe)  # straight to the app: a proxy would normalize
        assert answer.status_code == 404, probe
        assert "[project]" not in answer.text and "root:" not in answer.text


def _empty_states(
    server: Server, context_factory: Any, label: str, expect: str, check: Any = None
) -> None:
    for width in (1280, 375):
        context = context_factory(width=width)
        for path in PAGES[:5]:
            page, watch = _open(context, server, path)
            shoot(page, f"empty-{label}-{_name(path)}-{width}")
            assert not watch.problems, (path, watch.problems)
            assert not layout_problems(page), (path, width, layout_problems(page))
            text = page.inner_text("main")
            assert expect in text, (path, text[:600])
            assert "Traceback" not in text
            if check is not None:
                check(page, path)
            page.close()


def _says_offline_and_what_to_do(page: Any, path: str) -> None:
    """The header says offline; the banner what to check and when the next retry is."""
    assert page.get_attribute("#live", "data-state") == "offline", path
    banner = page.locator("#conn-banner")
    assert banner.is_visible(), path
    text = banner.inner_text()
    assert "CANDLECAST_BINANCE_URL" in text and "network" in text and "451" in text, text
    assert re.search(r"Next retry in \d+ s|Retrying now", text), text
    assert "nothing needs to be done" not in page.inner_text("main"), path


@pytest.fixture(scope="module")
def empty_servers(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> Iterator[dict[str, Server]]:
    """Two servers for the empty states, started side by side to save a start-up: "down",
    whose exchange does not listen, and "no-model", with one day of candles (too little to
    train on) and no stream, so candles come by REST polling only."""
    fake = FakeExchange(
        csv_path=shared_data_path(MAIN_CSV), start_ms=parse_iso_utc(LIVE_START), speed=SPEED
    ).start()
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    starting = {
        "down": serve(
            tmp_path_factory.mktemp("down"),
            binance_url=f"http://{closed}",
            ws_url=f"ws://{closed}",
        ),
        "no-model": serve(
            tmp_path_factory.mktemp("no-model"),
            binance_url=fake.base_url,
            ws_url=fake.ws_url,
            CANDLECAST_BACKFILL_DAYS="1",
            CANDLECAST_TRAIN_DAYS="1",
            CANDLECAST_STREAM="false",
        ),
    }
    try:
        with ExitStack() as running, ThreadPoolExecutor(max_workers=2) as pool:
            futures = {name: pool.submit(cm.__enter__) for name, cm in starting.items()}
            failures = [future.exception() for future in futures.values()]
            # Every server that did start is stopped again, even when the other did not.
            for name, future in futures.items():
                if future.exception() is None:
                    running.push(starting[name].__exit__)
            for failure in failures:
                if failure is not None:
                    raise failure
            yield {name: future.result() for name, future in futures.items()}
    finally:
        fake.stop()


def test_empty_states_with_the_exchange_down(
    empty_servers: dict[str, Server], context_factory: Any
) -> None:
    server = empty_servers["down"]

    def failed_once() -> bool:
        runs = server.get("/api/jobs").json()["runs"]
        return any(run["status"] == "failed" for run in runs)

    wait_for(failed_once, timeout=60, what="a failed backfill")
    _empty_states(
        server,
        context_factory,
        "exchange-down",
        "the exchange cannot be reached",
        check=_says_offline_and_what_to_do,
    )


def test_empty_states_without_a_model(
    empty_servers: dict[str, Server], context_factory: Any
) -> None:
    server = empty_servers["no-model"]

    def trained_or_failed() -> bool:
        runs = server.get("/api/jobs").json()["runs"]
        return any(run["name"] == "train" and run["status"] != "running" for run in runs)

    wait_for(trained_or_failed, timeout=60, what="the first training to give up")
    context = context_factory()
    for path in ("/", "/models", "/forecasts", "/charts"):
        page, watch = _open(context, server, path)
        shoot(page, f"empty-no-model-{_name(path)}-1280")
        assert not watch.problems, (path, watch.problems)
        text = page.inner_text("main")
        assert "No model yet" in text or "No forecasts" in text, path
        # Without the stream the header says degraded, with why in its title; no banner.
        assert page.get_attribute("#live", "data-state") == "degraded", path
        assert "stream" in (page.get_attribute("#live", "title") or ""), path
        assert page.locator("#conn-banner").is_hidden(), path
        page.close()
