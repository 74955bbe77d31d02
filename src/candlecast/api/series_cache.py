"""The trailing 90 days of candles and the champion's predictions, kept in memory as columns.

A /api/series answer for a recent window is then a slice of arrays plus the encoding, instead
of two 26k-row reads. The columns are brought up to date incrementally: rows written since the
last look (new candles and repaired ones, found by their fetched_at stamp) are merged in, and
new predictions aligned. A new champion, or a window older than what is held, reads afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Connection

from candlecast.api.series import PRED_COLUMNS, REAL_COLUMNS, RawColumns, align, read_raw
from candlecast.domain import interval_ms
from candlecast.jobs.common import DAY_MS
from candlecast.store import candle_reads, predictions, registry

_NAN = float("nan")


@dataclass
class _Held:
    """One pair's and one model's columns, and what they were synced against."""

    start: int
    raw: RawColumns
    written: int | None
    predicted: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _merge(old: RawColumns, new: RawColumns) -> RawColumns:
    """Old rows updated and extended by new ones (a new row wins over an old one)."""
    times = np.concatenate([new.times, old.times])
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    first_of_each = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else ordered
    picked = order[first_of_each.astype(bool)]
    merged_times = times[picked]
    real = {k: np.concatenate([new.real[k], old.real[k]])[picked] for k in REAL_COLUMNS}
    pred = {k: np.full(len(merged_times), _NAN) for k in PRED_COLUMNS}
    align(merged_times, pred, {"open_time": old.times, **old.pred})
    return RawColumns(times=merged_times, real=real, pred=pred)


def _size(raw: RawColumns) -> int:
    return int(
        raw.times.nbytes
        + sum(column.nbytes for column in raw.real.values())
        + sum(column.nbytes for column in raw.pred.values())
    )


class TrailingColumns:
    """Holds the trailing `span_ms` of columns per (symbol, interval, model), within
    `max_bytes` in all, dropping the least recently used pair first; thread-safe."""

    def __init__(self, *, span_ms: int, max_bytes: int = 256 * 2**20) -> None:
        self._span = span_ms
        self._max_bytes = max_bytes
        self._held: OrderedDict[tuple[str, str, int | None], _Held] = OrderedDict()
        self._lock = threading.Lock()

    def held_bytes(self) -> int:
        """Memory the held columns take now."""
        with self._lock:
            return sum(_size(held.raw) for held in self._held.values())

    def holds(self, symbol: str, interval: str) -> bool:
        """Whether any columns of the pair are held (worth bringing up to date)."""
        with self._lock:
            return any(key[:2] == (symbol, interval) for key in self._held)

    def _evict(self) -> None:
        # Called with self._lock held; the most recently used entry always stays.
        total = sum(_size(held.raw) for held in self._held.values())
        while total > self._max_bytes and len(self._held) > 1:
            _, dropped = self._held.popitem(last=False)
            total -= _size(dropped.raw)

    def window(
        self,
        connection: Connection,
        *,
        symbol: str,
        interval: str,
        model_id: int | None,
        newest: int,
        start: int,
        end: int,
    ) -> RawColumns:
        """Columns for open_time in [start, end], from memory when the window is recent."""
        key = (symbol, interval, model_id)
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                self._held.move_to_end(key)
        if held is None or start < held.start or newest - held.start > 2 * self._span:
            if start < newest - self._span:
                # Older than what is worth holding: read this window directly.
                return read_raw(
                    connection,
                    symbol=symbol,
                    interval=interval,
                    start=start,
                    end=end,
                    model_id=model_id,
                )
            held = self._load(connection, key, newest=newest)
        with held.lock:
            self._sync(connection, key, held, newest=newest)
            window = held.raw.between(start, end)
        with self._lock:
            self._evict()
        return window

    def _load(
        self, connection: Connection, key: tuple[str, str, int | None], *, newest: int
    ) -> _Held:
        symbol, interval, model_id = key
        start = newest - self._span
        written = candle_reads.last_write(connection, symbol=symbol, interval=interval, start=start)
        predicted = (
            None if model_id is None else predictions.last_open_time(connection, model_id=model_id)
        )
        raw = read_raw(
            connection, symbol=symbol, interval=interval, start=start, end=newest, model_id=model_id
        )
        held = _Held(start=start, raw=raw, written=written, predicted=predicted)
        with self._lock:
            self._held[key] = held
            self._evict()
        return held

    def _sync(
        self, connection: Connection, key: tuple[str, str, int | None], held: _Held, *, newest: int
    ) -> None:
        symbol, interval, model_id = key
        written = candle_reads.last_write(
            connection, symbol=symbol, interval=interval, start=held.start
        )
        if written is not None and (held.written is None or written > held.written):
            changed = candle_reads.read_columns(
                connection,
                symbol=symbol,
                interval=interval,
                start=held.start,
                end=newest,
                written_since=held.written if held.written is not None else 0,
            )
            fresh = RawColumns(
                times=changed["open_time"],
                real={k: changed[k] for k in REAL_COLUMNS},
                pred={k: np.full(len(changed["open_time"]), _NAN) for k in PRED_COLUMNS},
            )
            held.raw = _merge(held.raw, fresh)
            held.written = written
            if model_id is not None and len(fresh.times):
                # Predictions for rows that were (re)written: read them back for those times.
                stored = predictions.read_columns(
                    connection,
                    model_id=model_id,
                    start=int(fresh.times[0]),
                    end=int(fresh.times[-1]),
                    columns=PRED_COLUMNS,
                )
                align(held.raw.times, held.raw.pred, stored)
        if model_id is None:
            return
        predicted = predictions.last_open_time(connection, model_id=model_id)
        if predicted is not None and (held.predicted is None or predicted > held.predicted):
            since = held.start if held.predicted is None else held.predicted + 1
            stored = predictions.read_columns(
                connection, model_id=model_id, start=since, end=predicted, columns=PRED_COLUMNS
            )
            align(held.raw.times, held.raw.pred, stored)
            held.predicted = predicted


def warm(
    columns: TrailingColumns, connection: Connection, *, symbol: str, interval: str, days: int
) -> None:
    """Brings the held columns of the pair's champion up to date, so that the next chart
    request only slices and encodes."""
    newest = candle_reads.last_open_time(connection, symbol=symbol, interval=interval)
    if newest is None:
        return
    model_id = registry.champion_id(connection, symbol=symbol, interval=interval)
    step = interval_ms(interval)
    columns.window(
        connection,
        symbol=symbol,
        interval=interval,
        model_id=model_id,
        newest=newest,
        start=newest - days * DAY_MS + step,
        end=newest + step,
    )
