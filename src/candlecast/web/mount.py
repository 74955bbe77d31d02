"""Wires the dashboard into a FastAPI app: pages, docs and static files.

Pages are thin server-rendered shells; their scripts read the JSON API from the browser, so a
page and the API can never disagree. Nothing here computes a metric, and nothing here imports
the api package: every /api route (and its cache) lives there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from candlecast.bootstrap import Services
from candlecast.web import assets
from candlecast.web.docs import ASSET_TYPES, Renderer, default_docs_dir, menu, safe_path
from candlecast.web.pairs import FollowedPairs, PagePair, PairNotShown

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
MARKETS_NAV = ("/markets", "Markets", "markets")
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


def root_of(request: Request, configured: str = "") -> str:
    """The path prefix this request came under ("" or "/prefix"), for links that must stay
    under it: the app's root_path (set from CANDLECAST_ROOT_PATH), else the configured one."""
    root = str(request.scope.get("root_path") or configured)
    return root.rstrip("/")


# The pages that show one pair's data: (path, template and page key, title).
PAIR_PAGES = (
    ("/", "overview", "Overview"),
    ("/charts", "charts", "Charts"),
    ("/forecasts", "forecasts", "Forecasts"),
    ("/models", "models", "Models"),
    ("/jobs", "jobs", "Jobs"),
)


def _nav(page: str, pairs: int) -> tuple[tuple[str, str, str], ...]:
    """The nav entries; Markets only once there is more than one pair to compare (a single
    pair's dashboard looks as it always did), or on the markets page itself."""
    if pairs > 1 or page == "markets":
        return (MARKETS_NAV, *NAV)
    return NAV


def _page_router(
    templates: Jinja2Templates, services: Services, docs_dir: Path | None
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    renderer = Renderer()
    settings = services.settings
    followed = FollowedPairs(services)

    def query_pair(request: Request) -> tuple[str | None, str | None]:
        params = request.query_params
        return params.get("symbol"), params.get("interval")

    def render(
        request: Request, name: str, page: str, shown: PagePair, **extra: Any
    ) -> HTMLResponse:
        context = {
            "page": page,
            "nav": _nav(page, len(shown.followed)),
            "root": root_of(request, settings.root_path),
            "adminer_url": settings.adminer_url,
            "symbol": shown.pair.symbol,
            "interval": shown.pair.interval,
            "pairs": [str(pair) for pair in shown.followed],
            "pair_query": shown.query,
            "static_version": assets.static_version(),
            "plotly_version": assets.plotly_version(),
            **extra,
        }
        response = templates.TemplateResponse(request, name, context)
        response.headers.update(_PAGE_HEADERS)
        return response

    def pair_page(request: Request, path: str, page: str, title: str) -> HTMLResponse:
        symbol, interval = query_pair(request)
        try:
            shown = followed.resolve(symbol, interval)
        except PairNotShown as exc:
            # The page of the default pair, saying why this one has none (never a 500).
            fallback = followed.lenient(None, None)
            response = render(
                request,
                "missing_pair.html",
                page,
                fallback,
                title="Pair not found",
                asked=exc.asked[:64],
                reason=str(exc)[:200],
                path=path,
            )
            response.status_code = 404
            return response
        return render(request, f"{page}.html", page, shown, title=title)

    def add_pair_page(path: str, page: str, title: str) -> None:
        def handler(request: Request) -> HTMLResponse:
            return pair_page(request, path, page, title)

        router.add_api_route(path, handler, methods=["GET"], response_class=HTMLResponse)

    for path, page, title in PAIR_PAGES:
        add_pair_page(path, page, title)

    @router.get("/markets", response_class=HTMLResponse)
    def markets(request: Request) -> HTMLResponse:
        shown = followed.lenient(*query_pair(request))
        return render(request, "markets.html", "markets", shown, title="Markets")

    def guide_page(request: Request, name: str) -> Response:
        items = menu(docs_dir)
        shown = followed.lenient(*query_pair(request))
        if docs_dir is None:
            return render(
                request,
                "guide.html",
                "guide",
                shown,
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
                shown,
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
            shown,
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


def mount(app: FastAPI, *, services: Services, docs_dir: Path | None = None) -> None:
    """Adds the dashboard pages, /markets, /guide docs and /static files.

    `docs_dir` is the Markdown folder shown under /guide; by default <repo>/docs beside the
    source tree, else ./docs. When none exists, /guide says so instead of failing.
    """
    resolved_docs = docs_dir if docs_dir is not None else default_docs_dir()
    if resolved_docs is not None and not resolved_docs.is_dir():
        resolved_docs = None
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    app.add_api_route(
        "/static/plotly.min.js", assets.plotly_js, methods=["GET"], include_in_schema=False
    )
    app.include_router(_page_router(templates, services, resolved_docs))
    app.mount("/static", assets.CachedStatic(directory=str(assets.STATIC_DIR)), name="static")
