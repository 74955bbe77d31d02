"""Multi-candle horizons: quantiles of the close and the range over the next 3 and 12 candles.

For an origin t (the last closed candle), horizon h and C = close[t]:
  y_range = (max high[t+1..t+h] - min low[t+1..t+h]) / C      y_close = log(close[t+h] / C)

- Range: per horizon, a HAR-style median (LAD) regression fitted directly on the h-candle target:
  y_range / tod_h on the 1-step anchors' inputs (deseasonalised range means over 1, 3, 6, 12, 72,
  288 candles, last |return|; anchors.anchor_inputs with the bundle's fitted time-of-day profile)
  and tod_h itself, the mean time-of-day factor of candles t+1..t+h. Weighted by tod_h x C so it
  minimises the range MAE in price units. Fitted on the fit rows whose h-candle window ends
  before validation starts; the point forecast is the median.
- Close: location 0 (a random walk has no forecastable drift at these horizons), scale = the range
  forecast, offsets by split conformal on the validation rows.
- Quantiles: split conformal on the validation rows (never the test rows), as the 1-step
  quantiles: range = f x (1 + offset of (y - f) / f), close = C x exp(f x offset of y / f).

Baselines, all causal at t (the candles closed at the origin and constants of the fit rows):
- persistence: range = max high - min low of the last h candles; close quantiles = the empirical
  quantiles of the h-step log returns of the fit rows, applied to C (a climatological fan).
- random_walk: range = sqrt(h) x the 1-step EWMA anchor's level x its scale x tod_h; close =
  Gaussian with sd = sqrt(h) x the RiskMetrics (lambda 0.94) sd of the 1-step log returns.
- har: the LAD anchor above (the model is this anchor: see docs/model.md, "Horizons").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import pandas as pd

from candlecast.ml.anchors import DAY_MS, HAR_INPUTS, Anchors, anchor_inputs
from candlecast.ml.features import on_rows, to_grid
from candlecast.ml.lad import lad_fit
from candlecast.ml.quantiles import LEVELS, column, conformal_offsets, coverage, gaussian_sd

HORIZONS: Final[tuple[int, ...]] = (3, 12)
# HorizonForecast's quantile keys: per mille as in quantiles.column ("q025" ... "q975").
QUANTILE_KEYS: Final = tuple(f"q{round(q * 1000):03d}" for q in LEVELS)
BASELINE_KEYS: Final = ("persistence_range", "random_walk_range", "har_range")
CLOSE_COLUMNS: Final = tuple(column("close", q) for q in LEVELS)
RANGE_COLUMNS: Final = tuple(column("range", q) for q in LEVELS)
CLIMATE_COLUMNS: Final = tuple(f"persistence_{c}" for c in CLOSE_COLUMNS)
_RANGE_INPUTS: Final = tuple(n for n in HAR_INPUTS if n != "tod_factor")
_MIN_SCALE: Final = 1e-6
# The LAD fit reads every third origin: h-candle targets of neighbouring origins overlap, so
# this costs <= 0.4% of test MAE on the main fixture (measured both ways, docs/model.md) and
# halves the fit (0.9 -> 0.4 s for both horizons on 60 days).
FIT_STRIDE: Final = 3


@dataclass(frozen=True, slots=True)
class HorizonForecast:
    """One horizon's forecast made from the last closed candle t (price units)."""

    horizon: int
    origin_open_time: int
    end_open_time: int
    last_close: float
    close_quantiles: dict[str, float]
    range: float
    range_quantiles: dict[str, float]
    baselines: dict[str, float]


@dataclass(frozen=True, slots=True)
class HorizonModel:
    """The fitted model of one horizon; to_dict/from_dict keep it JSON-ready in the bundle."""

    horizon: int
    har_coef: np.ndarray
    range_offsets: list[float]
    close_offsets: list[float]
    # Empirical quantiles (per LEVELS) of the fit rows' h-step log returns: the persistence fan.
    climatology: list[float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists of floats)."""
        return {
            "horizon": self.horizon,
            "har_coef": [float(x) for x in self.har_coef],
            "har_inputs": [*_RANGE_INPUTS, "tod_ahead"],
            "range_offsets": list(self.range_offsets),
            "close_offsets": list(self.close_offsets),
            "climatology": list(self.climatology),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> HorizonModel:
        """Restores to_dict's output."""
        return cls(
            horizon=int(doc["horizon"]),
            har_coef=np.asarray(doc["har_coef"], dtype="float64"),
            range_offsets=[float(x) for x in doc["range_offsets"]],
            close_offsets=[float(x) for x in doc["close_offsets"]],
            climatology=[float(x) for x in doc["climatology"]],
        )


def horizon_targets(grid: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """y_range and y_close of every grid row (NaN when any of the h candles ahead is missing)."""
    close = grid["close"]
    # A window holding a gap row has fewer than h values, so min_periods=h makes it NaN.
    high = grid["high"].rolling(horizon, min_periods=horizon).max().shift(-horizon)
    low = grid["low"].rolling(horizon, min_periods=horizon).min().shift(-horizon)
    last = close.shift(-horizon).where(high.notna())
    with np.errstate(divide="ignore", invalid="ignore"):
        y_close = np.log(last / close)
    return pd.DataFrame({"y_range": (high - low) / close, "y_close": y_close}, index=grid.index)


def tod_ahead(times: np.ndarray, tod: np.ndarray, step: int, horizon: int) -> np.ndarray:
    """Mean time-of-day factor of the candles t+1..t+h of each open time t (known in advance)."""
    total = np.zeros(len(times))
    for k in range(1, horizon + 1):
        slot = np.minimum(((times + k * step) % DAY_MS) // step, len(tod) - 1)
        total += tod[slot]
    return total / horizon


def _design(x: pd.DataFrame, ahead: np.ndarray) -> np.ndarray:
    cols = x[list(_RANGE_INPUTS)].to_numpy(dtype="float64")
    return np.column_stack([np.ones(len(x)), cols, ahead])


def _point(design: np.ndarray, coef: np.ndarray, ahead: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(design @ coef, 0.0) * ahead)


def _climatology(y_close: np.ndarray) -> list[float]:
    y = y_close[np.isfinite(y_close)]
    if not y.size:
        return [0.0] * len(LEVELS)
    return [float(v) for v in np.quantile(y, LEVELS)]


def fit_horizons(
    grid: pd.DataFrame, fit: np.ndarray, val: np.ndarray, anchors: Anchors
) -> tuple[list[HorizonModel], dict[str, Any]]:
    """Fits every horizon's model on grid positions `fit`, calibrates on `val` (training window).

    Returns the models and held-out validation figures per horizon (price-unit MAEs; coverage
    by cross-fitting: offsets from the first half of validation, scored on the second).
    """
    step = anchors.step
    times = grid.index.to_numpy(dtype=np.int64)
    x = anchor_inputs(grid, anchors.tod, step)
    close = grid["close"].to_numpy(dtype="float64")
    models: list[HorizonModel] = []
    figures: dict[str, Any] = {}
    for h in HORIZONS:
        y = horizon_targets(grid, h)
        y_range = y["y_range"].to_numpy()
        y_close = y["y_close"].to_numpy()
        ahead = tod_ahead(times, anchors.tod, step, h)
        design = _design(x, ahead)
        # Fit rows whose h candles ahead reach into validation would show the fit those candles.
        rows = fit[fit + h <= val[0]] if len(val) else fit
        rows = rows[::FIT_STRIDE]
        ok = np.zeros(len(grid), dtype=bool)
        ok[rows] = True
        ok &= np.isfinite(y_range) & np.isfinite(design).all(axis=1) & np.isfinite(close)
        if ok.sum() <= design.shape[1]:
            raise ValueError(f"too few complete rows to fit the {h}-candle horizon")
        weight = ahead[ok] * close[ok] / np.mean(close[ok])
        coef = lad_fit(design[ok], y_range[ok] / ahead[ok], weight)
        point = _point(design, coef, ahead)
        v = val[np.isfinite(y_range[val]) & np.isfinite(point[val]) & (point[val] > 0)]
        scale = np.maximum(point[v], _MIN_SCALE)
        range_offsets = conformal_offsets(y_range[v], point[v], scale)
        close_offsets = conformal_offsets(y_close[v], np.zeros(len(v)), scale)
        model = HorizonModel(h, coef, range_offsets, close_offsets, _climatology(y_close[ok]))
        models.append(model)
        base = _baselines(grid, x, ahead, h, anchors.ewma_scale)
        figures[str(h)] = _validation_figures(model, grid, v, y, point, base)
    return models, figures


def _validation_figures(
    model: HorizonModel,
    grid: pd.DataFrame,
    rows: np.ndarray,
    y: pd.DataFrame,
    point: np.ndarray,
    base: dict[str, np.ndarray],
) -> dict[str, Any]:
    close = grid["close"].to_numpy(dtype="float64")[rows]
    real = y["y_range"].to_numpy()[rows] * close
    out: dict[str, Any] = {"rows": len(rows)}
    out["range_mae"] = float(np.mean(np.abs(real - point[rows] * close)))
    for key in ("persistence_range", "random_walk_range"):
        out[f"{key}_mae"] = float(np.nanmean(np.abs(real - base[key][rows] * close)))
    half = len(rows) // 2
    if half >= 2:
        later = slice(half, None)
        p = np.maximum(point[rows], _MIN_SCALE)
        for target, centre in (("range", point[rows]), ("close", np.zeros(len(rows)))):
            yt = y[f"y_{target}"].to_numpy()[rows]
            off = conformal_offsets(yt[:half], centre[:half], p[:half])
            q = centre[later, None] + p[later, None] * np.asarray(off)[None, :]
            out[f"{target}_coverage"] = coverage(yt[later], q)
    return out


def _baselines(
    grid: pd.DataFrame, x: pd.DataFrame, ahead: np.ndarray, horizon: int, ewma_scale: float
) -> dict[str, np.ndarray]:
    """Relative persistence and random-walk range forecasts of every grid row (causal)."""
    close = grid["close"]
    high = grid["high"].rolling(horizon, min_periods=1).max()
    low = grid["low"].rolling(horizon, min_periods=1).min()
    level = x["ewma_level"].to_numpy(dtype="float64")
    return {
        "persistence_range": ((high - low) / close).to_numpy(dtype="float64"),
        "random_walk_range": math.sqrt(horizon) * ewma_scale * level * ahead,
    }


def predict_horizons(
    frame: pd.DataFrame, anchors: Anchors, models: list[HorizonModel]
) -> pd.DataFrame:
    """Every horizon's forecast from every row of the frame, in price units (long format).

    Columns: open_time, horizon, end_open_time, last_close, range, CLOSE_COLUMNS, RANGE_COLUMNS,
    BASELINE_KEYS, random_walk_close_sd (log-return sd of the Gaussian) and CLIMATE_COLUMNS.
    """
    step = anchors.step
    grid = to_grid(frame, step)
    times = grid.index.to_numpy(dtype=np.int64)
    x = anchor_inputs(grid, anchors.tod, step)
    close = grid["close"]
    ret = pd.Series(np.log(close.to_numpy() / close.shift(1).to_numpy()), index=grid.index)
    # gaussian_sd's row t sees the errors up to row t's own return (it shifts by one row).
    sd_1 = gaussian_sd(ret.shift(-1), pd.Series(0.0, index=grid.index)).to_numpy()
    parts = []
    for model in models:
        h = model.horizon
        ahead = tod_ahead(times, anchors.tod, step, h)
        point = _point(_design(x, ahead), model.har_coef, ahead)
        rel = _baselines(grid, x, ahead, h, anchors.ewma_scale)
        table = pd.DataFrame({"range_rel": point, **rel}, index=grid.index)
        table["rw_sd"] = math.sqrt(h) * sd_1
        rows = on_rows(table, frame).reset_index(drop=True)
        c = frame["close"].to_numpy(dtype="float64")
        f = rows["range_rel"].to_numpy()
        scale = np.maximum(np.nan_to_num(f), _MIN_SCALE)
        origin = frame["open_time"].to_numpy(dtype=np.int64)
        cols: dict[str, Any] = {"open_time": origin, "horizon": h}
        cols["end_open_time"] = origin + h * step
        cols["last_close"] = c
        cols["range"] = c * f
        rq = np.maximum(f[:, None] + scale[:, None] * np.asarray(model.range_offsets), 0.0)
        cq = np.clip(scale[:, None] * np.asarray(model.close_offsets), -0.5, 0.5)
        for i in range(len(LEVELS)):
            cols[CLOSE_COLUMNS[i]] = c * np.exp(cq[:, i])
            cols[RANGE_COLUMNS[i]] = c * rq[:, i]
            cols[CLIMATE_COLUMNS[i]] = c * math.exp(model.climatology[i])
        cols["persistence_range"] = c * rows["persistence_range"].to_numpy()
        cols["random_walk_range"] = c * rows["random_walk_range"].to_numpy()
        cols["har_range"] = c * f
        cols["random_walk_close_sd"] = rows["rw_sd"].to_numpy()
        out = pd.DataFrame(cols)
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def gaussian_close_levels(last_close: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Price quantiles (rows x LEVELS) of the random-walk Gaussian close baseline."""
    z = np.asarray([NormalDist().inv_cdf(q) for q in LEVELS])
    y = np.clip(np.asarray(sd, dtype="float64")[:, None] * z[None, :], -0.5, 0.5)
    return np.asarray(np.asarray(last_close, dtype="float64")[:, None] * np.exp(y))


def to_forecast(row: pd.Series) -> HorizonForecast:
    """A predict_horizons row as the public HorizonForecast."""
    return HorizonForecast(
        horizon=int(row["horizon"]),
        origin_open_time=int(row["open_time"]),
        end_open_time=int(row["end_open_time"]),
        last_close=float(row["last_close"]),
        close_quantiles=_keyed(row, CLOSE_COLUMNS),
        range=float(row["range"]),
        range_quantiles=_keyed(row, RANGE_COLUMNS),
        baselines={k: float(row[k]) for k in BASELINE_KEYS},
    )


def _keyed(row: pd.Series, columns: tuple[str, ...]) -> dict[str, float]:
    return {k: float(row[c]) for k, c in zip(QUANTILE_KEYS, columns, strict=True)}


def realized(
    frame: pd.DataFrame, origin_open_time: int, horizon: int, interval_ms: int
) -> tuple[float, float] | None:
    """(close of t+h, max high - min low over t+1..t+h), or None when any of them is missing."""
    wanted = origin_open_time + interval_ms * np.arange(1, horizon + 1, dtype=np.int64)
    rows = frame.loc[frame["open_time"].isin(wanted)]
    if len(rows) != horizon or rows["open_time"].nunique() != horizon:
        return None
    rows = rows.sort_values("open_time")
    values = rows[["high", "low", "close"]].to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        return None
    return float(values[-1, 2]), float(values[:, 0].max() - values[:, 1].min())
