"""The API token: configured, or generated once and kept owner-only in the state folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from candlecast.config import Settings
from candlecast.store.db import normalize_url, sqlite_path
from candlecast.store.locks import ensure_state_folder, state_folder


def token_path(settings: Settings) -> Path:
    """Where a generated API token lives: `api.token` in the state folder (locks.state_folder)."""
    return state_folder(settings.database_url, settings.state_dir) / "api.token"


def _old_token_path(settings: Settings) -> Path:
    # Before the state folder: beside a SQLite database, else in the working folder.
    database = sqlite_path(normalize_url(settings.database_url))
    if database is not None:
        return database.with_name(database.name + ".token")
    return Path("candlecast-api.token").resolve()


def _read_token(path: Path) -> str | None:
    if not path.exists():
        return None
    token = path.read_text(encoding="utf-8").strip()
    return token if len(token) >= 16 else None


def ensure_api_token(settings: Settings) -> tuple[str, Path | None]:
    """The configured token, or one generated once and kept with owner-only permissions.

    A token file from before the state folder is still read where it is, so upgrading keeps
    the token that clients already hold.
    """
    if settings.api_token:
        return settings.api_token, None
    path = token_path(settings)
    for candidate in (path, _old_token_path(settings)):
        token = _read_token(candidate)
        if token is not None:
            if candidate.stat().st_mode & 0o077:
                # Found readable by others (restored from a backup, written by hand): tighten.
                os.chmod(candidate, 0o600)
            return token, candidate
    ensure_state_folder(path.parent)
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return token, path
