"""Bearer-token auth for write routes; read routes are public."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from candlecast.api.context import Context

_bearer = HTTPBearer(auto_error=False, description="CANDLECAST_API_TOKEN")


async def require_token(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Admits the request only with `Authorization: Bearer <api_token>` (constant-time check)."""
    expected = context.services.settings.api_token
    if not expected:
        # Never open: without a configured token, write routes are simply off.
        raise HTTPException(503, "write routes are disabled: no API token is configured")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authorized = [Depends(require_token)]
