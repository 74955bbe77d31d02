"""The dashboard and documentation site, mounted on the API app by `mount`."""

from candlecast.web.mount import mount

__all__ = ["mount"]
