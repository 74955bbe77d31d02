"""Static files: the dashboard's own CSS/JS, and plotly.min.js from the installed plotly package.

Plotly is served from the Python package (no CDN, no npm), gzipped once in memory, under a URL
that carries its version, so browsers may cache it for a year.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from functools import cache
from importlib import resources
from pathlib import Path

from fastapi import Request, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
LONG_CACHE = "public, max-age=31536000, immutable"


def plotly_path() -> Path | None:
    """The bundled plotly.min.js of the installed plotly package, or None if it is missing."""
    try:
        root = resources.files("plotly")
    except ModuleNotFoundError:
        return None
    candidate = Path(str(root)) / "package_data" / "plotly.min.js"
    return candidate if candidate.is_file() else None


@cache
def plotly_version() -> str:
    """The plotly package version, used to version the script's URL."""
    try:
        import plotly

        return str(plotly.__version__)
    except ImportError:
        return "missing"


class _Compressed:
    """plotly.min.js read and gzipped once, on first request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plain: bytes | None = None
        self._gzipped: bytes | None = None

    def get(self) -> tuple[bytes, bytes] | None:
        with self._lock:
            if self._plain is None:
                path = plotly_path()
                if path is None:
                    return None
                self._plain = path.read_bytes()
                self._gzipped = gzip.compress(self._plain, compresslevel=6, mtime=0)
            assert self._gzipped is not None
            return self._plain, self._gzipped


_plotly = _Compressed()


async def plotly_js(request: Request) -> Response:
    """GET /static/plotly.min.js: the package's bundle, gzipped when accepted, cached long."""
    from starlette.concurrency import run_in_threadpool

    loaded = await run_in_threadpool(_plotly.get)
    if loaded is None:
        body = b"console.warn('plotly.min.js is not installed: charts are unavailable');"
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-store"})
    plain, gzipped = loaded
    headers = {"Cache-Control": LONG_CACHE, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(gzipped, media_type="text/javascript", headers=headers)
    return Response(plain, media_type="text/javascript", headers=headers)


class CachedStatic(StaticFiles):
    """Static files with a long cache when requested with a content version (?v=...)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" in scope.get("query_string", b"")
        if response.status_code == 200:
            response.headers["Cache-Control"] = LONG_CACHE if versioned else "no-cache"
        return response


@cache
def static_version() -> str:
    """A short hash of the dashboard's static files, appended to their URLs to bust caches."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]
