"""Browser fixtures: Debian's Chromium through Playwright; skipped with a reason when absent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import CHROMIUM, CHROMIUM_ARGS, missing_browser


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
