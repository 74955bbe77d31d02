"""The process's decoded model bundles, kept by artifact hash so a refresh does not decode its
champion again; bounded, least recently used first, since many pairs each have a champion.

Owned by Services (services.models) and passed to the jobs that load bundles.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for types: wiring a Services must not import LightGBM (the CLI stays light).
    from candlecast.ml.bundle import ModelBundle

# A pair's champion is loaded on every refresh: room for many pairs' champions and challengers.
DEFAULT_MAX_ENTRIES = 128
# Measured by the stored artifact's size, a proxy for the decoded trees' memory.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class ModelCache:
    """Decoded bundles by artifact hash; thread-safe, bounded by count and by artifact bytes."""

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a model cache holds at least one bundle")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[ModelBundle, int]] = OrderedDict()
        self._bytes = 0

    def get(self, sha256: str) -> ModelBundle | None:
        """The bundle with this artifact hash, if held (it becomes the most recently used)."""
        with self._lock:
            entry = self._entries.get(sha256)
            if entry is None:
                return None
            self._entries.move_to_end(sha256)
            return entry[0]

    def put(self, sha256: str, bundle: ModelBundle, *, size: int) -> None:
        """Holds a bundle whose artifact is `size` bytes, dropping the least recently used
        beyond the bounds. The newest bundle stays even when it alone exceeds max_bytes: the
        caller is about to use it."""
        with self._lock:
            previous = self._entries.pop(sha256, None)
            if previous is not None:
                self._bytes -= previous[1]
            self._entries[sha256] = (bundle, size)
            self._bytes += size
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, sha256: object) -> bool:
        with self._lock:
            return sha256 in self._entries

    @property
    def nbytes(self) -> int:
        """The artifact bytes of the bundles held."""
        with self._lock:
            return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
