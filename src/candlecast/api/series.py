"""The /api/series payload: stored candles beside the champion's materialized predictions.

Built from two column reads and numpy, then encoded with orjson straight to bytes (numpy
arrays natively for the columnar format): 90 days of 5m candles are 25,920 points, and
pydantic models for them would cost more than the whole budget. Point t carries the forecast
made at t for t+1 and its error against the realized t+1 candle (null until it exists).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection

from candlecast.domain import interval_ms
from candlecast.store import candle_reads, predictions

PRED_COLUMNS = ("open_next", "high_next", "low_next", "close_next", "range_next", "prob_up")
REAL_COLUMNS = ("open", "high", "low", "close", "volume")
_NAN = float("nan")


@dataclass(frozen=True)
class SeriesData:
    """Aligned float columns, one row per stored candle (NaN where nothing is known)."""

    times: np.ndarray
    real: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]
    err_close: np.ndarray
    err_amp: np.ndarray
    bucket_ms: int


@dataclass(frozen=True)
class RawColumns:
    """Candle columns ascending by open_time, with the model's predictions aligned to them."""

    times: np.ndarray
    real: dict[str, np.ndarray]
    pred: dict[str, np.ndarray]

    def between(self, start: int, end: int) -> RawColumns:
        """The rows with open_time in [start, end]."""
        first, last = np.searchsorted(self.times, [start, end], side="left")
        last = last + int(last < len(self.times) and self.times[last] == end)
        rows = slice(int(first), int(last))
        return RawColumns(
            times=self.times[rows],
            real={k: v[rows] for k, v in self.real.items()},
            pred={k: v[rows] for k, v in self.pred.items()},
        )


def read_raw(
    connection: Connection,
    *,
    symbol: str,
    interval: str,
    start: int,
    end: int,
    model_id: int | None,
) -> RawColumns:
    """Reads candles with open_time in [start, end] and the model's predictions for them."""
    frame = candle_reads.read_columns(
        connection, symbol=symbol, interval=interval, start=start, end=end
    )
    times = frame["open_time"]
    real = {name: frame[name] for name in REAL_COLUMNS}
    pred = {name: np.full(len(times), _NAN) for name in PRED_COLUMNS}
    if model_id is not None and len(times):
        stored = predictions.read_columns(
            connection, model_id=model_id, start=start, end=end, columns=PRED_COLUMNS
        )
        align(times, pred, stored)
    return RawColumns(times=times, real=real, pred=pred)


def align(times: np.ndarray, pred: dict[str, np.ndarray], stored: dict[str, np.ndarray]) -> None:
    """Writes stored prediction rows into `pred` at the positions of their candles."""
    if not len(times) or not len(stored["open_time"]):
        return
    ptimes = stored["open_time"]
    idx = np.searchsorted(times, ptimes).clip(max=len(times) - 1)
    found = times[idx] == ptimes
    for name in PRED_COLUMNS:
        pred[name][idx[found]] = stored[name][found]


def assemble(raw: RawColumns, *, interval: str, end: int) -> SeriesData:
    """Series rows up to `end`, each with its forecast's error against the next candle.

    `raw` must also hold the candle after `end` (when stored), for the last row's error.
    """
    step = interval_ms(interval)
    times, real, pred = raw.times, raw.real, raw.pred
    n_all = len(times)
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
    return [t + "Z" for t in np.datetime_as_string(times.astype("datetime64[ms]"), unit="s")]


def _cells(values: np.ndarray) -> list[float | None]:
    """Floats with NaN as None, so JSON gets null."""
    return [None if x != x else x for x in values.tolist()]


def encode_points(data: SeriesData, meta: dict[str, Any]) -> bytes:
    """The old system's shape: {"points":[{"real":…,"pred":…,"cls":…,"err":…}], …meta}."""
    real = data.real
    pred = data.pred
    pred_names = ("open_next", "high_next", "low_next", "close_next", "range_next")
    pred_ok = np.isfinite(np.vstack([pred[name] for name in pred_names])).all(axis=0).tolist()
    prob = pred["prob_up"]
    cls_ok = np.isfinite(prob).tolist()
    err_ok = np.isfinite(data.err_close) & np.isfinite(data.err_amp)
    err_ok = (err_ok & np.asarray(pred_ok)).tolist()
    reals = zip(
        _iso(data.times),
        *(real[k].tolist() for k in ("open", "high", "low", "close", "volume")),
        strict=True,
    )
    preds = zip(*(pred[name].tolist() for name in pred_names), strict=True)
    probs = prob.tolist()
    errors = zip(
        np.abs(data.err_close).tolist(),
        data.err_close.tolist(),
        np.abs(data.err_amp).tolist(),
        data.err_amp.tolist(),
        strict=True,
    )
    points = [
        {
            "real": {"time": t, "open": o, "high": h, "low": lo, "close": c, "volume": v},
            "pred": (
                {"open_next": po, "high_next": ph, "low_next": pl, "close_next": pc, "amp_next": pa}
                if p_ok
                else None
            ),
            "cls": (
                {"dir_next": int(up >= 0.5), "prob_up": up, "prob_down": 1 - up} if c_ok else None
            ),
            "err": (
                {"close_abs": ea, "close_signed": es, "amp_abs": ew, "amp_signed": ws}
                if e_ok
                else None
            ),
        }
        for (t, o, h, lo, c, v), (po, ph, pl, pc, pa), up, (
            ea,
            es,
            ew,
            ws,
        ), p_ok, c_ok, e_ok in zip(
            reals, preds, probs, errors, pred_ok, cls_ok, err_ok, strict=True
        )
    ]
    return orjson.dumps({"points": points, **meta})


def encode_columns(data: SeriesData, meta: dict[str, Any]) -> bytes:
    """Compact columnar arrays: {"time":[ms…],"open":[…],…,"err_amp_abs":[…], …meta}."""
    prob = data.pred["prob_up"]
    direction = np.where(np.isfinite(prob), (prob >= 0.5).astype(float), _NAN)
    columns = {
        "open": data.real["open"],
        "high": data.real["high"],
        "low": data.real["low"],
        "close": data.real["close"],
        "volume": data.real["volume"],
        "open_next": data.pred["open_next"],
        "high_next": data.pred["high_next"],
        "low_next": data.pred["low_next"],
        "close_next": data.pred["close_next"],
        "amp_next": data.pred["range_next"],
        "dir_next": direction,
        "prob_up": prob,
        "prob_down": 1 - prob,
        "err_close_abs": np.abs(data.err_close),
        "err_close_signed": data.err_close,
        "err_amp_abs": np.abs(data.err_amp),
        "err_amp_signed": data.err_amp,
    }
    # orjson writes numpy arrays natively (C-contiguous ones), and NaN as null.
    arrays = {name: np.ascontiguousarray(values) for name, values in columns.items()}
    payload = {"time": np.ascontiguousarray(data.times, dtype=np.int64), **arrays, **meta}
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
