"""Wires the dashboard into a FastAPI app: pages, docs, static files and the live version probe.

Pages are thin server-rendered shells; their scripts read the JSON API from the browser, so a
page and the API can never disagree. Nothing here computes a metric.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from candlecast.bootstrap import Services
from candlecast.domain import iso_utc
from candlecast.runtime import Runtime
from candlecast.store import candle_reads
from candlecast.web import assets
from candlecast.web.docs import ASSET_TYPES, Renderer, default_docs_dir, menu, safe_path
from candlecast.web.ledger import ledger_router

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# Top navigation: (path, label, page key).
NAV = (
    ("/", "Overview", "overview"),
    ("/charts", "Charts", "charts"),
    ("/forecasts", "Forecasts", "forecasts"),
    ("/models", "Models", "models"),
    ("/jobs", "Jobs", "jobs"),
    ("/guide", "Docs", "guide"),
)
# Security headers for HTML: only our own scripts run; Plotly needs inline styles.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


_FLAGS = ("stream_enabled", "stream_connected", "scheduler_enabled", "scheduler_running")


class VersionProbe:
    """Runtime.version plus the newest stored candle, re-read at most once a second.

    The newest candle is in the tag too, so replicas without a scheduler (whose Runtime never
    bumps) still see new candles written by a worker.
    """

    def __init__(self, services: Services, runtime: Runtime, *, ttl: float = 1.0) -> None:
        self._services = services
        self._runtime = runtime
        self._ttl = ttl
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._last: int | None = None

    def _newest(self) -> int | None:
        now = time.monotonic()
        with self._lock:
            if now - self._read_at < self._ttl:
                return self._last
        settings = self._services.settings
        try:
            with self._services.engine.connect() as connection:
                newest = candle_reads.last_open_time(
                    connection, symbol=settings.symbol, interval=settings.interval
                )
        except Exception:
            newest = None
        with self._lock:
            self._read_at, self._last = now, newest
        return newest

    def current(self) -> tuple[str, dict[str, Any]]:
        """(ETag, body) of the live state: version, newest candle, stream and scheduler, the
        connection to the exchange, and the exchange's clock.

        The clock is left out of the tag (it changes every call): pages measure their skew
        from a 200 answer, and a 304 only says that nothing else changed.
        """
        snapshot = self._runtime.snapshot()
        newest = self._newest()
        connection = self._runtime.connection()
        flags = {name: bool(snapshot[name]) for name in _FLAGS}
        bits = "".join("1" if flags[name] else "0" for name in _FLAGS)
        link = hashlib.sha256(json.dumps(connection, sort_keys=True).encode()).hexdigest()[:8]
        tag = f'W/"{snapshot["version"]}-{newest or 0}-{bits}-{link}"'
        body = {
            "version": snapshot["version"],
            "last_candle_time": iso_utc(newest) if newest else None,
            **flags,
            "connection": connection,
            "exchange_now_ms": self._runtime.exchange_now_ms(),
        }
        return tag, body


def root_of(request: Request, configured: str = "") -> str:
    """The path prefix this request came under ("" or "/prefix"), for links that must stay
    under it: the app's root_path (set from CANDLECAST_ROOT_PATH), else the configured one."""
    root = str(request.scope.get("root_path") or configured)
    return root.rstrip("/")


def _page_router(
    templates: Jinja2Templates, services: Services, docs_dir: Path | None
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    renderer = Renderer()
    settings = services.settings

    def render(request: Request, name: str, page: str, **extra: Any) -> HTMLResponse:
        context = {
            "page": page,
            "nav": NAV,
            "root": root_of(request, settings.root_path),
            "adminer_url": settings.adminer_url,
            "symbol": settings.symbol,
            "interval": settings.interval,
            "static_version": assets.static_version(),
            "plotly_version": assets.plotly_version(),
            **extra,
        }
        response = templates.TemplateResponse(request, name, context)
        response.headers.update(_PAGE_HEADERS)
        return response

    @router.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        return render(request, "overview.html", "overview", title="Overview")

    @router.get("/charts", response_class=HTMLResponse)
    def charts(request: Request) -> HTMLResponse:
        return render(request, "charts.html", "charts", title="Charts")

    @router.get("/forecasts", response_class=HTMLResponse)
    def forecasts(request: Request) -> HTMLResponse:
        return render(request, "forecasts.html", "forecasts", title="Forecasts")

    @router.get("/models", response_class=HTMLResponse)
    def models(request: Request) -> HTMLResponse:
        return render(request, "models.html", "models", title="Models")

    @router.get("/jobs", response_class=HTMLResponse)
    def jobs(request: Request) -> HTMLResponse:
        return render(request, "jobs.html", "jobs", title="Jobs")

    def guide_page(request: Request, name: str) -> Response:
        items = menu(docs_dir)
        if docs_dir is None:
            return render(
                request,
                "guide.html",
                "guide",
                title="Docs",
                menu=items,
                slug=name,
                doc=None,
                missing="folder",
            )
        if name.endswith(tuple(ASSET_TYPES)):
            asset = safe_path(docs_dir, name)
            if asset is None:
                return Response(b"not found", status_code=404, media_type="text/plain")
            return FileResponse(
                asset,
                media_type=ASSET_TYPES[asset.suffix],
                headers={"Cache-Control": "no-cache", **_PAGE_HEADERS},
            )
        slug = name.removesuffix(".md")
        path = safe_path(docs_dir, f"{slug}.md")
        if path is None:
            response = render(
                request,
                "guide.html",
                "guide",
                title="Not found",
                menu=items,
                slug=slug,
                doc=None,
                missing="page",
            )
            response.status_code = 404
            return response
        doc = renderer.render_file(path, root=root_of(request, settings.root_path))
        title = doc["title"] or slug
        return render(
            request,
            "guide.html",
            "guide",
            title=title,
            menu=items,
            slug=slug,
            doc=doc,
            missing=None,
        )

    @router.get("/guide", response_class=HTMLResponse)
    def guide_index(request: Request) -> Response:
        return guide_page(request, "index")

    @router.get("/guide/{name:path}", response_class=HTMLResponse)
    def guide(request: Request, name: str) -> Response:
        # `/guide/` (an empty name) is the index too, as `/guide` is.
        return guide_page(request, name or "index")

    return router


def _version_router(probe: VersionProbe) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["dashboard"])

    @router.get(
        "/version",
        summary="Live-update probe",
        responses={304: {"description": "Nothing new since the ETag given in If-None-Match"}},
    )
    def version(request: Request) -> Response:
        """A tiny probe the dashboard polls: the runtime version, the newest candle's open time,
        whether the stream and scheduler run, the connection to the exchange (`state`, `reason`,
        `hint`, `next_retry_at`) and the exchange's clock (`exchange_now_ms`), with an ETag.
        Send `If-None-Match` to get 304 until a candle or a forecast lands or a status
        changes."""
        tag, body = probe.current()
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
        return Response(json.dumps(body), media_type="application/json", headers=headers)

    return router


def mount(
    app: FastAPI, *, services: Services, runtime: Runtime, docs_dir: Path | None = None
) -> None:
    """Adds the dashboard pages, /guide docs, /static files, GET /api/version and /api/ledger.

    `docs_dir` is the Markdown folder shown under /guide; by default <repo>/docs beside the
    source tree, else ./docs. When none exists, /guide says so instead of failing.
    """
    resolved_docs = docs_dir if docs_dir is not None else default_docs_dir()
    if resolved_docs is not None and not resolved_docs.is_dir():
        resolved_docs = None
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    app.include_router(_version_router(VersionProbe(services, runtime)))
    app.include_router(ledger_router(services, runtime))
    app.add_api_route(
        "/static/plotly.min.js", assets.plotly_js, methods=["GET"], include_in_schema=False
    )
    app.include_router(_page_router(templates, services, resolved_docs))
    app.mount("/static", assets.CachedStatic(directory=str(assets.STATIC_DIR)), name="static")
