"""Locates the real candle files: ../shared/data when present, else the slices in tests/data.

tests/data holds xz-compressed copies (or slices; see tests/data/README.md) of the shared
files, so a plain clone runs every test that does not truly need a complete big file. Such a
test asks for `full=True`; it skips when ../shared/data is missing, or fails in CI
(CANDLECAST_REQUIRE_SHARED_DATA=1).
"""

from __future__ import annotations

import hashlib
import lzma
import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DIR = REPO_ROOT / "tests" / "data"
# The main fixture: BTCUSDT 5m, 2025-06-29 to 2025-10-06, no gaps (bundled whole).
MAIN_CSV = "btcusdt-5m-2025-06-29_2025-10-06.csv"


def shared_data_dir() -> Path:
    """The shared data folder: $CANDLECAST_SHARED_DATA or <repo root>/../shared/data."""
    override = os.environ.get("CANDLECAST_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def bundled_path(name: str) -> Path | None:
    """The bundled copy of a shared file, decompressed once into a per-user temp folder.

    The folder is named after the compressed bytes, so an updated slice never reads a stale
    copy, and the file keeps its name, which says its symbol and interval.
    """
    packed = BUNDLED_DIR / f"{name}.xz"
    if not packed.is_file():
        return None
    data = packed.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"candlecast-test-data-{os.getuid()}" / digest
    target = folder / name
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        # Written aside then renamed: parallel test processes never read a half-written file.
        partial = folder / f".{name}.{os.getpid()}"
        partial.write_bytes(lzma.decompress(data))
        os.replace(partial, target)
    return target


def shared_data_path(name: str, *, full: bool = False) -> Path:
    """Path of one real candle file: the shared one, else (unless `full`) its bundled copy or
    slice; skips the test when neither exists, or fails it when CI requires the data."""
    path = shared_data_dir() / name
    if path.is_file():
        return path
    if not full:
        bundled = bundled_path(name)
        if bundled is not None:
            return bundled
    what = "the complete file" if full else "it, and tests/data has no slice of it"
    reason = (
        f"shared data file {path} is missing and this test needs {what}; set "
        "CANDLECAST_SHARED_DATA to the folder holding the real candle CSVs"
    )
    if os.environ.get("CANDLECAST_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{reason} (CANDLECAST_REQUIRE_SHARED_DATA=1)", pytrace=False)
    pytest.skip(reason)
