"""The followed pairs as /api/pairs shows them: each pair's stored summary, held and recomputed
after the pair's refresh (or when older than a minute, for replicas that run no jobs), plus its
live status from this process's runtime, read per request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from sqlalchemy import Engine

from candlecast.domain import Pair, interval_ms, iso_utc
from candlecast.runtime import Runtime
from candlecast.store import pairs as pair_store
from candlecast.store.pair_summary import PairSummary, summarize

# A held summary older than this is re-read (another process may have written the pair).
SUMMARY_TTL_SECONDS = 60.0
# With the task queue, other processes write every pair all the time: re-read sooner.
QUEUE_SUMMARY_TTL_SECONDS = 5.0


class PairSummaries:
    """Thread-safe held summaries, one per pair. An expired one is answered as held while one
    background thread re-reads it, so a request never waits for more than the pairs it has
    never seen."""

    def __init__(self, engine: Engine, *, ttl: float = SUMMARY_TTL_SECONDS) -> None:
        self._engine = engine
        self._ttl = ttl
        self._lock = threading.Lock()
        self._held: dict[Pair, tuple[float, PairSummary]] = {}
        self._rereading: set[Pair] = set()
        self._reader = ThreadPoolExecutor(1, "candlecast-pair-summaries")

    def refreshed(self, pair: Pair) -> None:
        """Re-reads the pair's summary now (called after its refresh, off the request path)."""
        with self._engine.connect() as connection:
            summary = summarize(connection, pair)
        with self._lock:
            self._held[pair] = (time.monotonic(), summary)

    def get(self, pairs: list[Pair]) -> dict[Pair, PairSummary]:
        """Summaries of these pairs: held ones at once (expired ones re-read in the
        background), the others read now in one connection."""
        now = time.monotonic()
        expired: list[Pair] = []
        with self._lock:
            found: dict[Pair, PairSummary] = {}
            for pair in pairs:
                held = self._held.get(pair)
                if held is None:
                    continue
                found[pair] = held[1]
                if now - held[0] >= self._ttl and pair not in self._rereading:
                    self._rereading.add(pair)
                    expired.append(pair)
            kept = set(pairs)
            for gone in [pair for pair in self._held if pair not in kept]:
                del self._held[gone]
        if expired:
            with suppress(RuntimeError):  # shutting down
                self._reader.submit(self._reread, expired)
        missing = [pair for pair in pairs if pair not in found]
        if missing:
            with self._engine.connect() as connection:
                fresh = {pair: summarize(connection, pair) for pair in missing}
            with self._lock:
                for pair, summary in fresh.items():
                    self._held[pair] = (now, summary)
            found.update(fresh)
        return found

    def _reread(self, pairs: list[Pair]) -> None:
        try:
            with self._engine.connect() as connection:
                for pair in pairs:
                    summary = summarize(connection, pair)
                    with self._lock:
                        self._held[pair] = (time.monotonic(), summary)
                        self._rereading.discard(pair)
        finally:
            with self._lock:
                self._rereading.difference_update(pairs)


def pair_status(
    entry: pair_store.FollowedPair,
    summary: PairSummary,
    runtime: Runtime,
    *,
    now_ms: int,
    streamed: bool,
) -> tuple[str, str | None]:
    """live, degraded, backfilling or failed, with the reason when not live."""
    health = runtime.pairs.get(entry.pair)
    if health.error is not None:
        return "failed", health.error
    if entry.backfilled_at is None or (health.starting and summary.last_open_time is None):
        return "backfilling", "fetching the pair's history"
    if summary.last_open_time is None:
        return "degraded", "no candle stored yet"
    step = interval_ms(entry.interval)
    age = now_ms - (summary.last_open_time + step)
    if age > 2 * step:
        return "degraded", f"the newest candle closed {age // 1000} s ago"
    if not runtime.scheduler_enabled:
        return "live", None
    if not streamed:
        return "degraded", "not on the real-time stream; REST ingest only"
    if summary.champion_id is None:
        return "degraded", "no model yet"
    return "live", None


def entry_json(
    entry: pair_store.FollowedPair,
    summary: PairSummary,
    runtime: Runtime,
    *,
    now_ms: int,
    streamed: bool,
) -> dict[str, Any]:
    """One /api/pairs entry."""
    status, reason = pair_status(entry, summary, runtime, now_ms=now_ms, streamed=streamed)
    newest = summary.last_open_time
    age = None
    if newest is not None:
        age = max(0.0, (now_ms - (newest + interval_ms(entry.interval))) / 1000)
    forecast = summary.forecast
    skill = summary.skill_7d
    return {
        "symbol": entry.symbol,
        "interval": entry.interval,
        "added_at": iso_utc(entry.added_at),
        "last_candle_time": iso_utc(newest) if newest is not None else None,
        "last_candle_age_seconds": age,
        "last_close": summary.last_close,
        "change_24h_pct": summary.change_24h_pct,
        "champion_id": summary.champion_id,
        "forecast": None
        if forecast is None
        else {
            "target_time": iso_utc(forecast.target_open_time),
            "close": forecast.close,
            "close_lo": forecast.close_lo,
            "close_hi": forecast.close_hi,
            "prob_up": forecast.prob_up,
        },
        "skill_7d": None
        if skill is None
        else {"close": skill.close, "range": skill.range, "forecasts": skill.forecasts},
        "sparkline_24h": list(summary.sparkline),
        "status": status,
        "status_reason": reason,
    }
