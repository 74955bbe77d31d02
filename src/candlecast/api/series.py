"""The /api/series payload: stored candles beside the champion's materialized predictions.

Built from two column reads and numpy, then encoded by string templates straight to bytes:
90 days of 5m candles are 25,920 points, and building pydantic models or nested dicts for
them would cost more than the whole budget. Point t carries the forecast made at t for t+1
and its error against the realized t+1 candle (null until that candle exists).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import Connection

from candlecast.domain import interval_ms
from candlecast.store import candles as candle_store
from candlecast.store import predictions

PRED_COLUMNS = ("open_next", "high_next", "low_next", "close_next", "range_next", "prob_up")
_NAN = float("nan")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic GC: building ~10^5 short-lived tuples and floats otherwise triggers
    several full collections that cost more than the build. Nothing built here has cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class SeriesData:
    """Aligned float columns, one row per stored candle (NaN where nothing is known)."""

    times: np.ndarray
    real: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]
    err_close: np.ndarray
    err_amp: np.ndarray
    bucket_ms: int


def load(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int,
    end: int,
    model_id: int | None,
) -> SeriesData:
    """Reads candles in [start, end] (plus the one after end, for errors) and the model's rows."""
    step = interval_ms(interval)
    frame = candle_store.read_columns(
        connection, symbol=symbol, interval=interval, start=start, end=end + step
    )
    times = frame["open_time"]
    real = {name: frame[name] for name in ("open", "high", "low", "close", "volume")}
    n_all = len(times)
    pred = {name: np.full(n_all, _NAN) for name in PRED_COLUMNS}
    if model_id is not None and n_all:
        stored = predictions.read_columns(
            connection, model_id=model_id, start=start, end=end, columns=PRED_COLUMNS
        )
        ptimes = stored["open_time"]
        idx = np.searchsorted(times, ptimes).clip(max=n_all - 1)
        found = times[idx] == ptimes
        for name in PRED_COLUMNS:
            pred[name][idx[found]] = stored[name][found]
    # The realized next candle exists only where the following stored row is exactly t + step.
    next_close = np.full(n_all, _NAN)
    next_amp = np.full(n_all, _NAN)
    if n_all > 1:
        follows = np.diff(times) == step
        next_close[:-1] = np.where(follows, real["close"][1:], _NAN)
        next_amp[:-1] = np.where(follows, real["high"][1:] - real["low"][1:], _NAN)
    keep = times <= end
    data = SeriesData(
        times=times,
        real=real,
        pred=pred,
        err_close=pred["close_next"] - next_close,
        err_amp=pred["range_next"] - next_amp,
        bucket_ms=step,
    )
    return data if keep.all() else _take(data, np.flatnonzero(keep))


def _take(data: SeriesData, rows: np.ndarray) -> SeriesData:
    return replace(
        data,
        times=data.times[rows],
        real={k: v[rows] for k, v in data.real.items()},
        pred={k: v[rows] for k, v in data.pred.items()},
        err_close=data.err_close[rows],
        err_amp=data.err_amp[rows],
    )


def downsample(data: SeriesData, *, interval: str, max_points: int) -> SeriesData:
    """Buckets equal time spans: OHLCV aggregated, forecast and error of each bucket's last row."""
    n = len(data.times)
    if n <= max_points:
        return data
    step = interval_ms(interval)
    span = int(data.times[-1] - data.times[0]) // step + 1
    width = -(-span // max_points) * step
    buckets = (data.times - data.times[0]) // width
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], n] - 1
    real = data.real
    return SeriesData(
        times=data.times[starts],
        real={
            "open": real["open"][starts],
            "high": np.maximum.reduceat(real["high"], starts),
            "low": np.minimum.reduceat(real["low"], starts),
            "close": real["close"][ends],
            "volume": np.add.reduceat(real["volume"], starts),
        },
        pred={k: v[ends] for k, v in data.pred.items()},
        err_close=data.err_close[ends],
        err_amp=data.err_amp[ends],
        bucket_ms=width,
    )


def _iso(times: np.ndarray) -> list[str]:
    return list(np.datetime_as_string(times.astype("datetime64[ms]"), unit="s"))


_REAL = '{"real":{"time":"%sZ","open":%r,"high":%r,"low":%r,"close":%r,"volume":%r},'
_PRED = '"pred":{"open_next":%.10g,"high_next":%.10g,"low_next":%.10g,"close_next":%.10g,' + (
    '"amp_next":%.10g},'
)
_CLS = '"cls":{"dir_next":%d,"prob_up":%.6g,"prob_down":%.6g},'
_ERR = '"err":{"close_abs":%.10g,"close_signed":%.10g,"amp_abs":%.10g}}'


def encode_points(data: SeriesData, meta: dict[str, Any]) -> bytes:
    """The old system's shape: {"points":[{"real":…,"pred":…,"cls":…,"err":…}], …meta}."""
    real = data.real
    pred = data.pred
    pred_names = ("open_next", "high_next", "low_next", "close_next", "range_next")
    pred_ok = np.isfinite(np.vstack([pred[name] for name in pred_names])).all(axis=0)
    prob = pred["prob_up"]
    cls_ok = np.isfinite(prob)
    err_ok = pred_ok & np.isfinite(data.err_close) & np.isfinite(data.err_amp)
    real_parts = [
        _REAL % row
        for row in zip(
            _iso(data.times),
            *(real[k].tolist() for k in ("open", "high", "low", "close", "volume")),
            strict=True,
        )
    ]
    pred_rows = zip(*(pred[name].tolist() for name in pred_names), strict=True)
    pred_parts = [
        _PRED % row if ok else '"pred":null,'
        for row, ok in zip(pred_rows, pred_ok.tolist(), strict=True)
    ]
    up = (prob >= 0.5).astype(int).tolist()
    cls_rows = zip(up, prob.tolist(), (1 - prob).tolist(), strict=True)
    cls_parts = [
        _CLS % row if ok else '"cls":null,'
        for row, ok in zip(cls_rows, cls_ok.tolist(), strict=True)
    ]
    close_err = data.err_close
    err_rows = zip(np.abs(close_err).tolist(), close_err.tolist(), np.abs(data.err_amp).tolist(),
                   strict=True)  # fmt: skip
    err_parts = [
        _ERR % row if ok else '"err":null}'
        for row, ok in zip(err_rows, err_ok.tolist(), strict=True)
    ]
    parts = zip(real_parts, pred_parts, cls_parts, err_parts, strict=True)
    points = ",".join(map("".join, parts))
    tail = json.dumps(meta)[1:]
    return ('{"points":[' + points + "]," + tail).encode()


def _column(values: np.ndarray, fmt: str) -> str:
    finite = np.isfinite(values)
    items = values.tolist()
    if finite.all():
        return "[" + ",".join(map(fmt.__mod__, items)) + "]"
    cells = (fmt % x if ok else "null" for x, ok in zip(items, finite.tolist(), strict=True))
    return "[" + ",".join(cells) + "]"


def encode_columns(data: SeriesData, meta: dict[str, Any]) -> bytes:
    """Compact columnar arrays: {"time":[ms…],"open":[…],…,"err_amp_abs":[…], …meta}."""
    prob = data.pred["prob_up"]
    columns: dict[str, tuple[np.ndarray, str]] = {
        "open": (data.real["open"], "%r"),
        "high": (data.real["high"], "%r"),
        "low": (data.real["low"], "%r"),
        "close": (data.real["close"], "%r"),
        "volume": (data.real["volume"], "%r"),
        "open_next": (data.pred["open_next"], "%.10g"),
        "high_next": (data.pred["high_next"], "%.10g"),
        "low_next": (data.pred["low_next"], "%.10g"),
        "close_next": (data.pred["close_next"], "%.10g"),
        "amp_next": (data.pred["range_next"], "%.10g"),
        "dir_next": (np.where(np.isfinite(prob), (prob >= 0.5).astype(float), _NAN), "%d"),
        "prob_up": (prob, "%.6g"),
        "prob_down": (1 - prob, "%.6g"),
        "err_close_abs": (np.abs(data.err_close), "%.10g"),
        "err_close_signed": (data.err_close, "%.10g"),
        "err_amp_abs": (np.abs(data.err_amp), "%.10g"),
    }
    body = ",".join(f'"{name}":{_column(values, fmt)}' for name, (values, fmt) in columns.items())
    times = "[" + ",".join(map(str, data.times.tolist())) + "]"
    tail = json.dumps(meta)[1:]
    return ('{"time":' + times + "," + body + "," + tail).encode()
