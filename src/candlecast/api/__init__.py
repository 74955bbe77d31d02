"""The REST API: FastAPI app factory, routers, response schemas."""

from candlecast.api.app import create_app

__all__ = ["create_app"]
