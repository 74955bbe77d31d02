"""Error translation: candlecast's errors become real status codes with a JSON `detail`.

Validation messages name the parameter plainly; nothing ever returns a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from candlecast.api.context import BadParameter
from candlecast.domain import (
    ConfigError,
    ExchangeError,
    ExchangeRejected,
    IPBanned,
    JobAlreadyRunning,
    NotFound,
    PairAlreadyFollowed,
    RateLimited,
    StoreError,
    UnknownPair,
)
from candlecast.jobs.modeling import NoData, NoModel

log = logging.getLogger(__name__)

# Binance's "Invalid symbol." error code.
_INVALID_SYMBOL = -1121


class ErrorResponse(BaseModel):
    """The body of every error response."""

    detail: str


# Declared on every route, so OpenAPI shows the body errors really have (FastAPI's default
# 422 schema is a list of objects; ours is one sentence naming the parameter).
DECLARED_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "A bad parameter; the message names it"},
    "default": {"model": ErrorResponse, "description": "Any other error"},
}


def _json(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _parameter(location: tuple[Any, ...]) -> str:
    """The parameter an error is about: ("query", "days") -> "days"; a whole body -> "body"."""
    names = [str(part) for part in location if part not in ("query", "body", "path", "header")]
    return ".".join(names) or (str(location[0]) if location else "request")


def describe_validation(errors: list[Any]) -> str:
    """One plain sentence per failed parameter, e.g. "days: must be <= 90 (got 91)"."""
    parts = []
    for error in errors:
        name = _parameter(tuple(error.get("loc", ())))
        message = str(error.get("msg", "is invalid"))
        if "input" in error and error.get("type") != "missing" and error["input"] is not None:
            message += f" (got {error['input']!r:.60})"
        parts.append(f"invalid parameter '{name}': {message}")
    return "; ".join(parts) or "invalid request"


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _json(422, describe_validation(list(exc.errors())))


async def _bad_parameter(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadParameter)
    return _json(422, f"invalid parameter '{exc.name}': {exc.message}")


async def _config(_request: Request, exc: Exception) -> JSONResponse:
    return _json(422, str(exc))


async def _conflict(_request: Request, exc: Exception) -> JSONResponse:
    return _json(409, str(exc))


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return _json(404, str(exc))


async def _store(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", exc)
    return _json(503, "the database is unavailable; try again shortly")


async def _exchange(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ExchangeRejected):
        if exc.code == _INVALID_SYMBOL:
            return _json(422, "invalid parameter 'symbol': the exchange does not list it")
        return _json(502, str(exc))
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    elif isinstance(exc, IPBanned):
        log.error("%s", exc)
    return _json(503, f"the exchange is unreachable or refusing requests: {exc}", headers)


def install(app: FastAPI) -> None:
    """Registers the handlers that map candlecast's errors to status codes."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(BadParameter, _bad_parameter)
    app.add_exception_handler(ConfigError, _config)
    app.add_exception_handler(JobAlreadyRunning, _conflict)
    app.add_exception_handler(PairAlreadyFollowed, _conflict)
    app.add_exception_handler(UnknownPair, _config)
    app.add_exception_handler(NoModel, _not_found)
    app.add_exception_handler(NoData, _not_found)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(StoreError, _store)
    app.add_exception_handler(OperationalError, _store)
    app.add_exception_handler(ExchangeError, _exchange)
