"""Which pair a page shows: `?symbol=&interval=` in its URL, checked against the followed pairs.

Pages read the followed pairs from the store (never through the api package), at most once a
second, so a pair added or removed while the service runs shows up in the picker at once
without every page view costing a query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy.exc import SQLAlchemyError

from candlecast.bootstrap import Services
from candlecast.domain import ConfigError, Pair, validate_interval, validate_symbol
from candlecast.store import pairs as store_pairs


class PairNotShown(Exception):
    """The page's URL names a malformed pair, or one this service does not follow."""

    def __init__(self, message: str, *, asked: str) -> None:
        self.asked = asked
        super().__init__(message)


@dataclass(frozen=True)
class PagePair:
    """The pair a page shows, the pairs its picker lists, and the query its links carry."""

    pair: Pair
    followed: tuple[Pair, ...]
    # Whether the URL named the pair; links keep it then (and always with several pairs).
    explicit: bool

    @property
    def query(self) -> str:
        """`?symbol=..&interval=..` for links that keep this pair, or "" when the pair is the
        only one and the URL did not name it (single-pair links stay as they always were)."""
        if not self.explicit and len(self.followed) <= 1:
            return ""
        return "?" + urlencode({"symbol": self.pair.symbol, "interval": self.pair.interval})


class FollowedPairs:
    """The followed pairs from the store, re-read at most every `ttl` seconds.

    Before the pair list exists (a database not migrated yet, or never seeded), the configured
    pairs stand in, so the pages still open.
    """

    def __init__(
        self,
        services: Services,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._services = services
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = -1e18
        self._pairs: tuple[Pair, ...] = ()

    def _read(self) -> tuple[Pair, ...]:
        try:
            with self._services.engine.connect() as connection:
                rows = store_pairs.followed(connection)
        except SQLAlchemyError:
            rows = []
        found = tuple(row.pair for row in rows)
        return found or self._services.settings.configured_pairs()

    def get(self) -> tuple[Pair, ...]:
        """The followed pairs in their order; the first is every page's default."""
        now = self._clock()
        with self._lock:
            if now - self._read_at < self._ttl and self._pairs:
                return self._pairs
        found = self._read()
        with self._lock:
            self._read_at, self._pairs = now, found
        return found

    def resolve(self, symbol: str | None, interval: str | None) -> PagePair:
        """The pair named by a page's query (a missing part is the default pair's), or
        PairNotShown when it is malformed or not followed."""
        followed = self.get()
        default = followed[0]
        asked = f"{symbol or default.symbol}:{interval or default.interval}"
        try:
            chosen = Pair(
                default.symbol if not symbol else validate_symbol(symbol),
                default.interval if not interval else validate_interval(interval),
            )
        except ConfigError as exc:
            raise PairNotShown(str(exc), asked=asked) from None
        if chosen not in followed:
            raise PairNotShown(f"{chosen} is not a followed pair", asked=str(chosen))
        return PagePair(chosen, followed, explicit=bool(symbol or interval))

    def lenient(self, symbol: str | None, interval: str | None) -> PagePair:
        """As resolve, but a bad pair falls back to the default: for pages that show no pair's
        data (docs, markets) and only carry the pair on to their links."""
        try:
            return self.resolve(symbol, interval)
        except PairNotShown:
            followed = self.get()
            return PagePair(followed[0], followed, explicit=False)
