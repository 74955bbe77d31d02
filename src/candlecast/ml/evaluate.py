"""Scoring of (forecast, realized) pairs and rolling-origin walk-forward evaluation.

`score_pairs` is the one place the report's metrics are computed; walk_forward pools every fold's
test pairs through it, and prospective_metrics runs the prediction ledger's pairs through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
import pandas as pd

from candlecast.domain import iso_utc
from candlecast.ml.anchors import ANCHOR_TARGETS
from candlecast.ml.baselines import (
    ANCHOR_NAMES,
    BASELINE_NAMES,
    STRONG_BASELINE_NAMES,
    STRONG_TARGETS,
    baseline_levels,
    baseline_returns,
)
from candlecast.ml.features import FEATURE_WINDOW
from candlecast.ml.horizon_scores import join_realized as join_horizons
from candlecast.ml.horizon_scores import score_horizons
from candlecast.ml.metrics import (
    accuracy,
    bootstrap_skill_ci,
    brier,
    ece,
    log_loss,
    mae,
    mape,
    rmse,
    skill,
    smape,
    wda,
    wilson_interval,
)
from candlecast.ml.quantiles import score_quantiles
from candlecast.ml.train import TrainParams, resolve_params, train

DAY_MS: Final = 86_400_000
# Bootstrap blocks span six hours of candles: errors cluster with volatility within a session.
BOOTSTRAP_BLOCK_MS: Final = 6 * 3_600_000
TARGET_NAMES: Final = ("open", "high", "low", "close", "range")
REALIZED_COLUMNS: Final = ("open", "high", "low", "close")


def _num(x: float) -> float | None:
    # JSON has no NaN: an undefined metric (e.g. no pairs) is reported as null.
    return float(x) if np.isfinite(x) else None


def score_pairs(pairs: pd.DataFrame, *, interval_level: float = 0.9) -> dict[str, Any]:
    """Scores joined forecast/realized rows: targets, close_interval and direction blocks.

    `pairs` holds the prediction columns (see bundle.PREDICTION_COLUMNS) plus the realized
    real_open, real_high, real_low, real_close and real_range of the forecast candle.
    Rows with no realized candle are ignored. high, low and range are scored against two naives:
    `baseline`/`baseline_mae`/`skill` against base_*_next (last range centred on the last close)
    and `strong_baseline`/`strong_baseline_mae`/`strong_skill` against strong_base_*_next (the
    12-candle rolling medians); see baselines.py.
    """
    pairs = pairs[pairs["real_close"].notna()]
    targets: dict[str, dict[str, Any]] = {}
    for name in TARGET_NAMES:
        real = pairs[f"real_{name}"].to_numpy(dtype="float64")
        pred = pairs[f"{name}_next"].to_numpy(dtype="float64")
        model_mae = mae(real, pred)
        base_mae = mae(real, pairs[f"base_{name}_next"].to_numpy(dtype="float64"))
        targets[name] = {
            "mae": _num(model_mae),
            "rmse": _num(rmse(real, pred)),
            "mape": _num(mape(real, pred)),
            "smape": _num(smape(real, pred)),
            "baseline": BASELINE_NAMES[name],
            "baseline_mae": _num(base_mae),
            "skill": _num(skill(model_mae, base_mae)),
        }
        if name in STRONG_TARGETS:
            strong = pairs[f"strong_base_{name}_next"].to_numpy(dtype="float64")
            strong_mae = mae(real, strong)
            targets[name]["strong_baseline"] = STRONG_BASELINE_NAMES[name]
            targets[name]["strong_baseline_mae"] = _num(strong_mae)
            targets[name]["strong_skill"] = _num(skill(model_mae, strong_mae))
        if name in ANCHOR_TARGETS:
            targets[name].update(_anchor_figures(pairs, name, real, pred, model_mae))
    real_close = pairs["real_close"].to_numpy(dtype="float64")
    lo = pairs["close_lo"].to_numpy(dtype="float64")
    hi = pairs["close_hi"].to_numpy(dtype="float64")
    covered = (real_close >= lo) & (real_close <= hi)
    close_interval = {
        "level": interval_level,
        "coverage": _num(float(covered.mean()) if len(covered) else np.nan),
        "mean_width": _num(float(np.mean(hi - lo)) if len(hi) else np.nan),
    }
    last_close = pairs["last_close"].to_numpy(dtype="float64")
    up = (real_close > last_close).astype("float64")
    prob = pairs["prob_up"].to_numpy(dtype="float64")
    acc, hits, n = accuracy(up, prob > 0.5)
    ci = wilson_interval(hits, n)
    direction = {
        "n": n,
        "accuracy": _num(acc),
        "accuracy_ci95": [_num(ci[0]), _num(ci[1])],
        "brier": _num(brier(up, prob)),
        "brier_baseline": _num(brier(up, pairs["base_prob_up"].to_numpy(dtype="float64"))),
        "log_loss": _num(log_loss(up, prob)),
        "ece": _num(ece(up, prob)),
        "wda": _num(wda(np.log(real_close / last_close), prob > 0.5)),
    }
    report = {"targets": targets, "close_interval": close_interval, "direction": direction}
    quantiles = score_quantiles(pairs)
    if quantiles is not None:
        report["quantiles"] = _clean(quantiles)
    return report


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _anchor_figures(
    pairs: pd.DataFrame, name: str, real: np.ndarray, pred: np.ndarray, model_mae: float
) -> dict[str, Any]:
    """har_*/ewma_* baseline, MAE, skill and a paired block-bootstrap 95% CI of the skill.

    Null figures when the pairs lack the anchor's column (forecasts of pre-anchor bundles).
    """
    out: dict[str, Any] = {}
    step = 0
    if len(pairs):
        step = int(pairs["target_open_time"].iloc[0] - pairs["open_time"].iloc[0])
    block = max(1, BOOTSTRAP_BLOCK_MS // step) if step > 0 else 1
    for anchor, prefix in ANCHOR_NAMES.items():
        column = f"base_{prefix}_{name}_next"
        values = (
            pairs[column].to_numpy(dtype="float64")
            if column in pairs.columns
            else np.full(len(pairs), np.nan)
        )
        anchor_mae = mae(real, values)
        ok = np.isfinite(values) & np.isfinite(real) & np.isfinite(pred)
        lo, hi = bootstrap_skill_ci(real[ok] - pred[ok], real[ok] - values[ok], block=block)
        out[f"{prefix}_baseline"] = anchor
        out[f"{prefix}_baseline_mae"] = _num(anchor_mae)
        out[f"{prefix}_skill"] = _num(skill(model_mae, anchor_mae))
        out[f"{prefix}_skill_ci95"] = [_num(lo), _num(hi)]
    return out


def join_realized(predictions: pd.DataFrame, realized: pd.DataFrame) -> pd.DataFrame:
    """Pairs each forecast with the candle it forecast (target_open_time == open_time)."""
    real = realized[["open_time", *REALIZED_COLUMNS]].rename(
        columns={c: f"real_{c}" for c in REALIZED_COLUMNS}
    )
    real = real.assign(real_range=real["real_high"] - real["real_low"])
    real = real.rename(columns={"open_time": "target_open_time"})
    return predictions.merge(real, on="target_open_time", how="inner", validate="many_to_one")


def prospective_metrics(
    predictions: pd.DataFrame, realized: pd.DataFrame, *, interval_level: float = 0.9
) -> dict[str, Any]:
    """Scores any window of stored forecasts against the candles that later closed.

    `predictions` has bundle.PREDICTION_COLUMNS (as written to the ledger); `realized` is a candle
    frame. Returns {"rows": N, "targets": ..., "close_interval": ..., "direction": ...}.
    Price-baseline columns (base_*_next, strong_base_*_next) that `predictions` lacks, e.g. ledger
    rows, are recomputed from `realized`, which must then also hold each forecast's as-of candle
    (and the 11 before it, else the rolling median uses the candles it has); base_prob_up, the
    training window's climatology, cannot be recomputed and is required.
    """
    pairs = join_realized(_with_baselines(predictions, realized), realized)
    return {"rows": len(pairs), **score_pairs(pairs, interval_level=interval_level)}


def _with_baselines(predictions: pd.DataFrame, realized: pd.DataFrame) -> pd.DataFrame:
    names = [f"base_{t}_next" for t in TARGET_NAMES]
    names += [f"strong_base_{t}_next" for t in STRONG_TARGETS]
    missing = [c for c in names if c not in predictions.columns]
    if not missing or len(predictions) == 0:
        return predictions
    asof = predictions["open_time"].to_numpy(dtype=np.int64)
    step = int(predictions["target_open_time"].iloc[0] - asof[0])
    candles = realized.sort_values("open_time").reset_index(drop=True)
    returns = baseline_returns(candles, step).set_index(candles["open_time"])
    returns = returns.reindex(asof).reset_index(drop=True)
    last_close = predictions["last_close"].astype("float64").reset_index(drop=True)
    levels = baseline_levels(last_close, returns)
    levels.index = predictions.index
    return predictions.assign(**{c: levels[c] for c in missing})


def fold_plan(
    open_times: np.ndarray,
    *,
    folds: int,
    train_days: float,
    interval_ms: int,
    test_days: float | None = None,
) -> list[dict[str, int]]:
    """Rolling origins over [first, last]: per fold the train window and the test block (ms).

    Fold k trains on [origin - purge - train_days, origin - purge) and tests on the candles in
    [origin, test_end). purge = FEATURE_WINDOW intervals, so no test forecast's feature window
    reaches a training candle. Test blocks are consecutive and end at the last candle; by default
    they split everything after the first train window + purge equally.
    """
    if folds < 1 or train_days <= 0:
        raise ValueError("folds must be >= 1 and train_days > 0")
    first, end = int(open_times[0]), int(open_times[-1]) + interval_ms
    purge = FEATURE_WINDOW * interval_ms
    train_ms = round(train_days * DAY_MS / interval_ms) * interval_ms
    earliest_origin = first + train_ms + purge
    if test_days is None:
        block = (end - earliest_origin) // folds // interval_ms * interval_ms
    else:
        block = round(test_days * DAY_MS / interval_ms) * interval_ms
    if block <= 0 or end - folds * block < earliest_origin:
        raise ValueError(
            f"not enough data for {folds} folds after {train_days} training days: "
            f"{(end - first) / DAY_MS:.1f} days available"
        )
    plan = []
    for k in range(folds):
        origin = end - (folds - k) * block
        plan.append(
            {
                "fold": k,
                "train_start_ms": origin - purge - train_ms,
                "train_end_ms": origin - purge,
                "test_start_ms": origin,
                "test_end_ms": origin + block,
            }
        )
    return plan


def _fold_predictions(
    frame: pd.DataFrame, times: np.ndarray, fold: Mapping[str, int], params: TrainParams
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    in_train = (times >= fold["train_start_ms"]) & (times < fold["train_end_ms"])
    bundle = train(frame.loc[in_train].reset_index(drop=True), params)
    step = params.interval_ms
    # The forecast of the first test candle is made from the row before it; history from the end
    # of the purge gap onward is enough for every feature and never includes a training candle.
    history = (times >= fold["train_end_ms"]) & (times < fold["test_end_ms"] - step)
    history_frame = frame.loc[history].reset_index(drop=True)
    preds = bundle.predict(history_frame)
    keep = (preds["target_open_time"] >= fold["test_start_ms"]) & (
        preds["target_open_time"] < fold["test_end_ms"]
    )
    # Horizon forecasts from the same origins as the test block's next-candle forecasts.
    horizons = bundle.predict_horizons(history_frame)
    if horizons is None:
        horizons = pd.DataFrame({"open_time": [], "horizon": []})
    first = horizons["open_time"] + step
    horizons = horizons[(first >= fold["test_start_ms"]) & (first < fold["test_end_ms"])]
    info: dict[str, Any] = {"train_rows": int(in_train.sum()), "weights": dict(bundle.weights)}
    info["gate_baselines"] = dict(bundle.gate_baselines)
    info["sources"] = dict(bundle.sources)
    info["direction_weight"] = bundle.direction_weight
    return preds.loc[keep], horizons, info


def walk_forward(
    frame: pd.DataFrame,
    *,
    folds: int,
    train_days: float,
    interval_ms: int,
    params: TrainParams | Mapping[str, Any] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    test_days: float | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Rolling-origin evaluation: each fold runs train() on its window and forecasts its block.

    Restricts the frame to [start_ms, end_ms) first. Pooled metrics cover every fold's test
    candles; per_fold repeats them per block with its boundaries. `on_fold(number, total)`
    hears each fold as it begins, numbered from 1 (for a progress display); it changes nothing.
    """
    p = resolve_params(params)
    if p.interval_ms != interval_ms:
        raise ValueError(f"params.interval {p.interval!r} does not match interval_ms")
    times_all = frame["open_time"].to_numpy(dtype=np.int64)
    keep = np.ones(len(frame), dtype=bool)
    if start_ms is not None:
        keep &= times_all >= start_ms
    if end_ms is not None:
        keep &= times_all < end_ms
    data = frame.loc[keep].reset_index(drop=True)
    times = data["open_time"].to_numpy(dtype=np.int64)
    plan = fold_plan(
        times, folds=folds, train_days=train_days, interval_ms=interval_ms, test_days=test_days
    )
    all_pairs = []
    all_horizons = []
    per_fold = []
    for number, fold in enumerate(plan, start=1):
        if on_fold is not None:
            on_fold(number, len(plan))
        preds, horizon_preds, info = _fold_predictions(data, times, fold, p)
        pairs = join_realized(preds, data)
        all_pairs.append(pairs)
        horizon_pairs = join_horizons(horizon_preds, data, interval_ms)
        all_horizons.append(horizon_pairs)
        bounds = {
            "start": iso_utc(fold["test_start_ms"]),
            "end": iso_utc(fold["test_end_ms"]),
            "train_start": iso_utc(fold["train_start_ms"]),
            "train_end": iso_utc(fold["train_end_ms"]),
        }
        per_fold.append(
            {
                **fold,
                **bounds,
                **info,
                "rows": len(pairs),
                **score_pairs(pairs, interval_level=p.interval_level),
                "horizons": score_horizons(horizon_pairs, interval_ms),
            }
        )
    pooled = pd.concat(all_pairs, ignore_index=True)
    pooled_horizons = pd.concat(all_horizons, ignore_index=True)
    return {
        "symbol": symbol or p.symbol,
        "interval": interval or p.interval,
        "rows": len(pooled),
        "folds": folds,
        "train_days": train_days,
        **score_pairs(pooled, interval_level=p.interval_level),
        "horizons": score_horizons(pooled_horizons, interval_ms),
        "per_fold": per_fold,
    }
