"""Logging for the CLI and the service: readable text or JSON lines, UTC times, and no secret.

One handler on the root logger, installed by `setup_logging`. Its formatter redacts the API
token, the read-only role's password and any password inside a URL from every line, tracebacks
included, whatever logger wrote it. Only the standard library is imported here: the CLI loads
this module before every command.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from candlecast.config import Settings

MASK = "***"
# Polled by every open page or by a monitor: their access lines are debug, never info.
POLLING_ROUTES = frozenset({"/api/version", "/api/health", "/metrics"})
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_PASSWORD_FIELD = re.compile(r"(?i)(password\s*[=:]\s*)('[^']*'|\"[^\"]*\"|[^\s,;&]+)")
# uvicorn's color_message repeats the message with terminal colour codes.
_STANDARD_FIELDS = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        *("message", "asctime", "taskName", "color_message"),
    }
)


class Redactor:
    """Masks known secrets, passwords in URLs and DSNs, and bearer tokens in text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Adds exact strings to mask (empty or very short ones are ignored: they would mask
        ordinary words)."""
        for secret in secrets:
            if secret and len(secret) >= 4:
                self._secrets.add(secret)
                # URLs carry passwords percent-encoded; mask that spelling too.
                decoded = unquote(secret)
                if decoded != secret and len(decoded) >= 4:
                    self._secrets.add(decoded)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(rf"\g<head>{MASK}@", text)
        text = _BEARER.sub(rf"\g<1>{MASK}", text)
        return _PASSWORD_FIELD.sub(rf"\g<1>{MASK}", text)


def utc_time(record: logging.LogRecord) -> str:
    """The record's time as UTC ISO 8601 with milliseconds and a Z."""
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`2025-08-01T00:00:00.000Z INFO candlecast.service: message`, redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return utc_time(record)

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, any extras, and the traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        redact = self.redactor
        entry: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_FIELDS and not name.startswith("_"):
                entry[name] = _clean(value, redact)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def _clean(value: Any, redact: Redactor) -> Any:
    """An extra field as JSON, with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, redact) for v in value]
    return redact(str(value))


class PollingAccessFilter(logging.Filter):
    """Demotes uvicorn's access lines for polling routes to DEBUG (kept only if DEBUG is on)."""

    def __init__(self, root_path: str = "") -> None:
        super().__init__()
        self.root_path = root_path.rstrip("/")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access line: (client, method, path with query, HTTP version, status).
        if not isinstance(args, tuple) or len(args) < 3 or not isinstance(args[2], str):
            return True
        path = args[2].split("?", 1)[0]
        if self.root_path and path.startswith(self.root_path + "/"):
            path = path[len(self.root_path) :]
        if path not in POLLING_ROUTES:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _CandlecastHandler(logging.StreamHandler[TextIO]):
    """The handler setup_logging installs (so a second call replaces it, not adds one).

    Without an explicit stream it writes to whatever sys.stderr is at the time, as logging's
    own last-resort handler does, so a swapped and closed stderr (a test runner's) never
    leaves it writing to a closed file."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._fixed = stream
        super().__init__(stream)

    @property
    def stream(self) -> TextIO:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        # StreamHandler.__init__ assigns sys.stderr when given no stream: keep following it.
        if value is not sys.stderr:
            self._fixed = value


def setup_logging(
    *,
    level: int = logging.WARNING,
    log_format: str = "text",
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Sends every log line to stderr (or `stream`), as text or JSON, redacted; returns the
    redactor so that secrets made later (a generated token) can be added."""
    redactor = Redactor(secrets)
    handler = _CandlecastHandler(stream)
    formatter = JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CandlecastHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return redactor


def settings_secrets(settings: Settings) -> list[str | None]:
    """Every secret a Settings holds: the API token, the read-only password, URL passwords."""
    found: list[str | None] = [settings.api_token]
    if settings.readonly_password is not None:
        found.append(settings.readonly_password.get_secret_value())
    # An unparseable URL is left to the URL pattern, which masks a password written in it.
    with contextlib.suppress(ValueError):
        found.append(urlsplit(settings.database_url).password)
    return found


def setup_service_logging(settings: Settings, *, extra_secrets: Iterable[str | None] = ()) -> None:
    """Logging for `serve` and `worker`: candlecast at INFO, access lines for polling routes at
    DEBUG, the configured format, and every secret in the settings masked."""
    setup_logging(
        log_format=settings.log_format,
        secrets=[*settings_secrets(settings), *extra_secrets],
    )
    # A service is watched through its log: candlecast's own INFO lines matter there.
    logging.getLogger("candlecast").setLevel(logging.INFO)
    access = logging.getLogger("uvicorn.access")
    for old in [f for f in access.filters if isinstance(f, PollingAccessFilter)]:
        access.removeFilter(old)
    access.addFilter(PollingAccessFilter(settings.root_path))


def redact(*secrets: str | None) -> None:
    """Masks these strings too, from now on, in every line setup_logging's handler writes."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, TextFormatter | JsonFormatter):
            formatter.redactor.add(*secrets)


def setup_cli_logging(*, verbose: bool) -> None:
    """Logging for every CLI command, before its settings are read: the level from --verbose,
    the format and the secrets to mask from the environment (serve and worker then redo it from
    their settings)."""
    env = os.environ
    database_password = None
    with contextlib.suppress(ValueError):
        database_password = urlsplit(env.get("CANDLECAST_DATABASE_URL", "")).password
    setup_logging(
        level=logging.INFO if verbose else logging.WARNING,
        log_format=env.get("CANDLECAST_LOG_FORMAT", "text").strip().lower(),
        secrets=[
            env.get("CANDLECAST_API_TOKEN"),
            env.get("CANDLECAST_READONLY_PASSWORD"),
            database_password,
        ],
    )
