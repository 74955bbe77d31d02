"""HTTP side of Binance's public kline dumps (data.binance.vision): paths, streaming, checksums.

Every file is streamed to disk while its sha256 is computed, then compared with the server's
`.CHECKSUM` (`<hex>  <file name>`). A 404 means the server has no such file, which is normal for
months not yet published or before a symbol was listed; it is returned, not raised.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from candlecast.config import Settings
from candlecast.domain import (
    ConfigError,
    DataFileError,
    ExchangeBlocked,
    ExchangeRejected,
    ExchangeUnavailable,
    RestrictedLocation,
)

_USER_AGENT = "candlecast/0.1"
_CHUNK_BYTES = 1 << 16


def monthly_path(symbol: str, interval: str, month: str) -> str:
    """URL path of a monthly spot kline dump; month is YYYY-MM."""
    return f"/data/spot/monthly/klines/{symbol}/{interval}/{symbol}-{interval}-{month}.zip"


def daily_path(symbol: str, interval: str, day: str) -> str:
    """URL path of a daily spot kline dump; day is YYYY-MM-DD."""
    return f"/data/spot/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{day}.zip"


@dataclass(frozen=True)
class Fetched:
    """A dump file saved to disk whose sha256 matched the server's checksum."""

    path: Path
    url: str
    sha256: str
    size: int


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def parse_checksum(text: str, *, url: str, file_name: str) -> str:
    """The hex digest of a `.CHECKSUM` body (`<sha256>  <file name>`)."""
    parts = text.split()
    digest = parts[0].lower() if parts else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DataFileError(url, f"not a sha256 checksum file: {text[:80]!r}")
    if len(parts) > 1 and parts[1].lstrip("*") != file_name:
        raise DataFileError(url, f"checksum is for {parts[1]!r}, not {file_name!r}")
    return digest


class DumpClient:
    """Downloads dump files and their checksums, with retries on 429, 5xx and dropped links."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 10.0,
        max_retries: int = 6,
        backoff_base: float = 0.25,
        backoff_max: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._rng = random.Random()
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": _USER_AGENT},
            follow_redirects=True,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DumpClient:
        """Builds a client for CANDLECAST_DUMPS_URL; keyword overrides win."""
        options: dict[str, Any] = {
            "base_url": settings.dumps_url,
            "timeout": settings.http_timeout_seconds,
            "max_retries": settings.http_max_retries,
        }
        return cls(**{**options, **overrides})

    def checksum(self, path: str) -> str | None:
        """The sha256 the server publishes for the file at path, or None on 404."""
        url = f"{self.base_url}{path}.CHECKSUM"
        body = self._retrying(lambda: self._get_small(f"{path}.CHECKSUM"))
        if body is None:
            return None
        return parse_checksum(body, url=url, file_name=path.rsplit("/", 1)[-1])

    def fetch(self, path: str, folder: Path) -> Fetched | None:
        """Downloads the file at path into folder and checks its sha256; None on 404.

        A file that does not match its checksum is downloaded once more (a corrupted transfer),
        then refused with DataFileError.
        """
        url = f"{self.base_url}{path}"
        target = folder / path.rsplit("/", 1)[-1]
        for attempt in range(2):
            saved = self._retrying(lambda: self._stream_to(path, target))
            if saved is None:
                return None
            digest, size = saved
            expected = self.checksum(path)
            if expected is None:
                target.unlink(missing_ok=True)
                raise DataFileError(url, "the server has no .CHECKSUM to verify it; refused")
            if digest == expected:
                return Fetched(target, url, digest, size)
            if attempt == 0:
                continue
            target.unlink(missing_ok=True)
            raise DataFileError(
                url,
                f"sha256 {digest} does not match the published checksum {expected}; "
                "refused, nothing imported from it",
            )
        raise AssertionError("unreachable")

    def _get_small(self, path: str) -> str | None:
        try:
            response = self._http.get(path)
        except httpx.UnsupportedProtocol:
            raise self._bad_url() from None
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 404:
            return None
        self._raise_for(response)
        return response.text

    def _stream_to(self, path: str, target: Path) -> tuple[str, int] | None:
        digest = hashlib.sha256()
        size = 0
        try:
            with self._http.stream("GET", path) as response:
                if response.status_code == 404:
                    return None
                self._raise_for(response)
                with target.open("wb") as handle:
                    for block in response.iter_bytes(_CHUNK_BYTES):
                        digest.update(block)
                        handle.write(block)
                        size += len(block)
        except httpx.UnsupportedProtocol:
            raise self._bad_url() from None
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        return digest.hexdigest(), size

    def _bad_url(self) -> ConfigError:
        return ConfigError(
            f"CANDLECAST_DUMPS_URL {self.base_url!r} is not an http:// or https:// URL"
        )

    def _raise_for(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        if status == 429:
            try:
                delay = max(0.0, float(response.headers.get("Retry-After", "1")))
            except ValueError:
                delay = 1.0
            raise _Retryable(f"HTTP 429, Retry-After {delay:g} s", delay=delay)
        if status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status == 451:
            raise RestrictedLocation(
                f"{self.base_url} refuses service from this location (HTTP 451); set "
                "CANDLECAST_DUMPS_URL to a mirror of data.binance.vision reachable from here"
            )
        if status == 403:
            raise ExchangeBlocked(f"{response.request.url} answered HTTP 403 (forbidden)")
        raise ExchangeRejected(status, None, f"{response.request.url} answered HTTP {status}")

    def _retrying(self, attempt: Callable[[], Any]) -> Any:
        last: _Retryable | None = None
        for number in range(self._max_retries + 1):
            if last is not None:
                if last.delay is not None:
                    self._sleep(last.delay)
                else:
                    cap = min(self._backoff_max, self._backoff_base * 2.0 ** (number - 1))
                    self._sleep(cap * (0.5 + self._rng.random() / 2))
            try:
                return attempt()
            except _Retryable as retry:
                last = retry
        assert last is not None
        raise ExchangeUnavailable(
            f"{self.base_url} failed {self._max_retries + 1} times; last: {last.reason}"
        )

    def close(self) -> None:
        """Closes the keep-alive connections."""
        self._http.close()

    def __enter__(self) -> DumpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
