"""/api/docs works offline: Swagger UI's files come from the app, and no request leaves
127.0.0.1 (the issue's "Zero requests to hosts other than 127.0.0.1 from any page")."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import PageWatch, free_port, serve, shoot

pytestmark = pytest.mark.e2e


def test_swagger_ui_renders_without_leaving_the_machine(
    tmp_path: Path, context_factory: Any
) -> None:
    # The API docs need no exchange: point it at a closed port so nothing else is reached either.
    closed = f"127.0.0.1:{free_port()}"
    with serve(tmp_path, binance_url=f"http://{closed}", ws_url=f"ws://{closed}") as server:
        page = context_factory().new_page()
        watch = PageWatch()
        watch.attach(page)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))

        answer = page.goto(server.base_url + "/api/docs")
        assert answer is not None and answer.status == 200
        page.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
        page.wait_for_load_state("networkidle")
        shoot(page, "api-docs-offline-1280")

        operations = page.locator(".opblock-summary-path").all_inner_texts()
        paths = {text.replace("\u200b", "").strip() for text in operations}
        assert {"/api/health", "/api/series", "/api/train", "/metrics"} <= paths, paths
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("candlecast")
        hosts = {urlsplit(url).hostname for url in requested if url.startswith("http")}
        assert hosts == {"127.0.0.1"}, requested
        assert any(url.endswith("/api/docs/assets/swagger-ui-bundle.js") for url in requested)
        assert any(url.endswith("/api/openapi.json") for url in requested)
        assert not watch.problems, watch.problems
