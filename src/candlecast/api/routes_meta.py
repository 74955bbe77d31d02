"""The API's own surroundings: Swagger UI served from an installed package, and /metrics.

Swagger UI's files come from the `fastapi-offline` package (Swagger UI 5, which reads the
OpenAPI 3.1 that FastAPI writes; swagger-ui-bundle's 4.15 cannot), never from a CDN, so the docs
work on a machine without internet. Every URL honours the path prefix the app is served under.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask

from candlecast.metrics import Metrics

DOCS_PATH = "/api/docs"
DOCS_ASSETS = "/api/docs/assets"
OPENAPI_PATH = "/api/openapi.json"
# The classic text format, which every Prometheus version reads.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _root(request: Request) -> str:
    return str(request.scope.get("root_path") or "").rstrip("/")


def swagger_ui_dir() -> Path:
    """The folder of Swagger UI's files inside the installed fastapi-offline package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: FastAPI) -> None:
    """Serves Swagger UI at /api/docs with its assets from the installed fastapi-offline."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + OPENAPI_PATH,
            title=f"{app.title} - API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # No badge that would ask validator.swagger.io to check the schema.
            swagger_ui_parameters={"validatorUrl": None},
        )


def metrics_router(metrics: Metrics) -> APIRouter:
    """GET /metrics: this process's Prometheus metrics."""
    router = APIRouter(tags=["ops"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def prometheus_metrics() -> Response:
        """Prometheus metrics (text format), every name starting `candlecast_`; see
        docs/operations.md. Public, like every read route, and free of secrets."""
        body = await run_in_threadpool(metrics.render)
        # A database read the scrape put off starts once the answer is out.
        after = BackgroundTask(metrics.store.refresh_if_due)
        return Response(body, media_type=METRICS_CONTENT_TYPE, background=after)

    return router
