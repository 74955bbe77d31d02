"""Browser fixtures: Debian's Chromium through Playwright; skipped with a reason when absent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import (
    ADMINER_URL,
    CHROMIUM,
    CHROMIUM_ARGS,
    LIVE_START,
    Live,
    live_service,
    missing_browser,
)
from tests.shared_data import MAIN_CSV, shared_data_path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module. Not per session: Playwright's sync API holds an event
    loop on the main thread while it runs, which would break every asyncio test after it."""
    reason = missing_browser()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context_factory(browser: Any) -> Iterator[Any]:
    """new_context(width=1280, theme="light"): a fresh browser context, closed after the test."""
    opened: list[Any] = []

    def make(width: int = 1280, theme: str = "light") -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": 900},
            color_scheme=theme,
            device_scale_factor=1,
            is_mobile=width < 500,
            has_touch=width < 500,
        )
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One service for the browser tests that need data and a model: backfilled, trained,
    forecasting and following the stream, served under /candlecast behind a stripping proxy,
    with an Adminer link in its nav. Shared by the package's modules (one backfill and one
    training instead of one per module) and stopped after the package's last test."""
    reason = missing_browser()
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")
    with live_service(
        tmp_path_factory.mktemp("live"),
        csv_path=shared_data_path(MAIN_CSV),
        start=LIVE_START,
        CANDLECAST_ADMINER_URL=ADMINER_URL,
    ) as service:
        yield service
