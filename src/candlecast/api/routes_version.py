"""GET /api/version: the tiny live-update probe every dashboard page polls, with an ETag."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from candlecast.api.context import PairDep
from candlecast.bootstrap import Services
from candlecast.domain import iso_utc
from candlecast.runtime import Runtime
from candlecast.store import candle_reads

_FLAGS = ("stream_enabled", "stream_connected", "scheduler_enabled", "scheduler_running")
# Newest-candle reads remembered at once; far more than the pairs one service follows.
_MAX_PAIRS = 4096


class VersionProbe:
    """Runtime.version plus a pair's newest stored candle, re-read at most once a second.

    The newest candle is in the tag too, so replicas without a scheduler (whose Runtime never
    bumps) still see new candles written by a worker.
    """

    def __init__(self, services: Services, runtime: Runtime, *, ttl: float = 1.0) -> None:
        self._services = services
        self._runtime = runtime
        self._ttl = ttl
        self._lock = threading.Lock()
        # (symbol, interval) -> (monotonic time read, newest open time or None)
        self._reads: dict[tuple[str, str], tuple[float, int | None]] = {}

    def _newest(self, symbol: str, interval: str) -> int | None:
        now = time.monotonic()
        key = (symbol, interval)
        with self._lock:
            hit = self._reads.get(key)
            if hit is not None and now - hit[0] < self._ttl:
                return hit[1]
        try:
            with self._services.engine.connect() as connection:
                newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
        except Exception:
            newest = None
        with self._lock:
            if len(self._reads) >= _MAX_PAIRS:
                self._reads.clear()
            self._reads[key] = (now, newest)
        return newest

    def current(self, symbol: str, interval: str) -> tuple[str, dict[str, Any]]:
        """(ETag, body) of the live state of a pair: version, its newest candle, stream and
        scheduler, the connection to the exchange, and the exchange's clock.

        The clock is left out of the tag (it changes every call): pages measure their skew
        from a 200 answer, and a 304 only says that nothing else changed.
        """
        snapshot = self._runtime.snapshot()
        newest = self._newest(symbol, interval)
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


def build_router(services: Services, runtime: Runtime) -> APIRouter:
    """The /api/version route with its own probe (one per app)."""
    router = APIRouter(prefix="/api", tags=["dashboard"])
    probe = VersionProbe(services, runtime)

    @router.get(
        "/version",
        summary="Live-update probe",
        responses={304: {"description": "Nothing new since the ETag given in If-None-Match"}},
    )
    def version(request: Request, pair: PairDep) -> Response:
        """A tiny probe the dashboard polls: the runtime version, the pair's newest candle's
        open time, whether the stream and scheduler run, the connection to the exchange
        (`state`, `reason`, `hint`, `next_retry_at`) and the exchange's clock
        (`exchange_now_ms`), with an ETag. Send `If-None-Match` to get 304 until a candle or a
        forecast lands or a status changes."""
        tag, body = probe.current(pair.symbol, pair.interval)
        headers = {"ETag": tag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=304, headers=headers)
        return Response(json.dumps(body), media_type="application/json", headers=headers)

    return router
