"""Pure training: candle frame + params -> ModelBundle. No I/O, no clock, no global state.

Procedure (see docs/model.md): features and targets on the whole frame; the most recent
`val_fraction` of the labelled rows is held out. LightGBM L1 regressors (the conditional median of
each target) and a binary classifier are fitted on the earlier rows only and are NOT refitted, so
every validation figure, shrinkage weight, calibration map and conformal quantile describes the
exact models that are deployed. The classical anchors (anchors.py: HAR-levels and EWMA with a
time-of-day factor) are fitted on the same rows; the high, low and range boosters start from
HAR's forecast and learn its residual, with the anchors' inputs as extra features. Each regressor
is blended with a baseline,
  y = baseline + w * (model - baseline),
where `baseline` is, per target, whichever baseline (the naives of baselines.py or the anchors)
has the lowest validation MAE (persistence for open and close); w is chosen on validation from a
grid, and w = 0 (pure baseline) unless the blend beats that same baseline on validation by at
least `min_val_skill` (for close and direction, also with a bootstrap CI above 0; gating.py).
The direction probability is Platt-calibrated and shrunk toward climatology the same way, by
Brier score. Quantiles are conformal offsets of scaled validation residuals (quantiles.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from candlecast.domain import INTERVAL_MS
from candlecast.ml.anchors import ANCHOR_FEATURES, ANCHOR_TARGETS, fit_anchors
from candlecast.ml.baselines import (
    HAR,
    frame_inputs,
    offset_values,
    with_anchors,
)
from candlecast.ml.bundle import FrameInputs, ModelBundle
from candlecast.ml.calibration import apply_platt, fit_platt
from candlecast.ml.features import (
    FEATURE_NAMES,
    FEATURE_WINDOW,
    PRICE_COLUMNS,
    REFERENCE_COLUMNS,
    REFERENCE_FEATURES,
    on_rows,
)
from candlecast.ml.gating import (
    BLOCK_MS,
    SIGNIFICANCE_TARGETS,
    WEIGHT_GRID,
    best_weight,
    candidates,
    figures,
    gate_baseline,
    pick_source,
)
from candlecast.ml.horizons import fit_horizons
from candlecast.ml.metrics import bootstrap_skill_ci, brier, skill
from candlecast.ml.quantiles import QUANTILE_TARGETS, conformal_offsets, validation_quantiles
from candlecast.ml.targets import grid_targets

REGRESSION_TARGETS = ("open", "high", "low", "close", "range")


@dataclass(frozen=True, slots=True)
class TrainParams:
    """Hyperparameters and procedure settings; every field has a measured default."""

    symbol: str = "BTCUSDT"
    interval: str = "5m"
    seed: int = 42
    num_threads: int = 2
    n_estimators: int = 150
    learning_rate: float = 0.06
    num_leaves: int = 15
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.7
    max_bin: int = 63
    classifier_estimators: int = 100
    val_fraction: float = 0.2
    min_val_skill: float = 0.005
    interval_level: float = 0.9
    # The next open equals the last close to within a cent; a model cannot improve on that, so
    # by default it is not fitted and the open forecast is persistence.
    fit_open: bool = False
    # High, low and range models learn the residual of the HAR anchor (LightGBM init_score) and
    # see its inputs as features; False fits them from scratch (the pre-anchor behaviour).
    anchor_offset: bool = True
    min_train_rows: int = 2 * FEATURE_WINDOW
    # Another pair's symbol (same interval) whose recent candles are features (cross-asset, e.g.
    # BTCUSDT for ETHUSDT); the frame must carry its columns (features.attach_reference).
    reference: str | None = None

    @property
    def interval_ms(self) -> int:
        """The candle interval in milliseconds."""
        return INTERVAL_MS[self.interval]


def resolve_params(params: TrainParams | Mapping[str, Any] | None) -> TrainParams:
    """Accepts TrainParams, a partial mapping of its fields (e.g. from JSON), or None."""
    if params is None:
        return TrainParams()
    if isinstance(params, TrainParams):
        return params
    known = {f.name for f in fields(TrainParams)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown training params {unknown}; known: {sorted(known)}")
    return replace(TrainParams(), **dict(params))


def data_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over open_time and the OHLCV values, so a bundle names the exact data it saw."""
    cols = ["open_time", *PRICE_COLUMNS, "volume"]
    values = frame[cols].to_numpy(dtype="float64")
    digest = hashlib.sha256()
    digest.update(",".join(cols).encode())
    digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def _lgb_params(p: TrainParams, objective: str) -> dict[str, Any]:
    return {
        "objective": objective,
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "min_data_in_leaf": p.min_data_in_leaf,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": 1,
        "max_bin": p.max_bin,
        "seed": p.seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": p.num_threads,
        "verbose": -1,
    }


@dataclass(slots=True)
class _Split:
    fit: np.ndarray
    val: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _split(frame: pd.DataFrame, targets: pd.DataFrame, p: TrainParams) -> _Split:
    labelled = np.flatnonzero(targets["y_close"].notna().to_numpy())
    if len(labelled) < p.min_train_rows:
        raise ValueError(
            f"too few labelled rows to train: {len(labelled)} < {p.min_train_rows} "
            f"(need consecutive candle pairs; is the window at least a few days?)"
        )
    n_val = max(round(len(labelled) * p.val_fraction), FEATURE_WINDOW // 2)
    fit, val = labelled[:-n_val], labelled[-n_val:]
    times = frame["open_time"].to_numpy(dtype=np.int64)
    meta = {
        "train_start_ms": int(times[0]),
        "train_end_ms": int(times[-1]),
        "fit_rows": len(fit),
        "val_rows": len(val),
        "validation_start_ms": int(times[val[0]]),
    }
    return _Split(fit=fit, val=val, meta=meta)


def _relabel(dataset: lgb.Dataset, label: np.ndarray, init_score: np.ndarray | None) -> lgb.Dataset:
    """The shared, constructed Dataset with a new label and init score.

    None clears the init score, so that the booster starts from the label's average as it does
    on a fresh Dataset.
    """
    dataset.set_label(label)
    if init_score is None:
        dataset.set_field("init_score", None)
        dataset.init_score = None
    else:
        dataset.set_init_score(init_score)
    return dataset


def train(
    frame: pd.DataFrame, params: TrainParams | Mapping[str, Any] | None = None
) -> ModelBundle:
    """Fits every model on the frame's candles and returns the bundle; pure and reproducible."""
    return train_with_inputs(frame, params)[0]


def train_with_inputs(
    frame: pd.DataFrame, params: TrainParams | Mapping[str, Any] | None = None
) -> tuple[ModelBundle, FrameInputs]:
    """train, plus the frame's inputs: bundle.predict(frame, inputs) then builds no features."""
    p = resolve_params(params)
    step = p.interval_ms
    if p.reference is not None:
        if p.reference == p.symbol:
            raise ValueError(f"a pair cannot be its own reference: {p.reference}")
        missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(
                f"params.reference is {p.reference!r} but the frame lacks {missing} "
                "(features.attach_reference adds them)"
            )
    grid, feats, base = frame_inputs(frame, step)
    grid_y = grid_targets(grid)
    targets = on_rows(grid_y, frame)
    split = _split(frame, targets, p)
    # The anchors are fitted on the fit rows only, like the models, so validation judges them
    # on candles they never saw.
    positions = grid.index.get_indexer(pd.Index(frame["open_time"].to_numpy(dtype=np.int64)))
    anchors = fit_anchors(grid, positions[split.fit], grid_y, step)
    anchor_feats, base = with_anchors(anchors, grid, frame, base)
    feats = pd.concat([feats, anchor_feats], axis=1)
    feature_names = [*FEATURE_NAMES, *ANCHOR_FEATURES]
    if p.reference is not None:
        feature_names += REFERENCE_FEATURES
    feats = feats[feature_names]
    x_fit = feats.iloc[split.fit]
    x_val = feats.iloc[split.val]
    c_val = targets["last_close"].to_numpy()[split.val]
    # One binned Dataset for every booster: the features and binning are the same, only the
    # label and init score differ, and binning 20,000 rows costs as much as a booster's fit.
    fit_set = lgb.Dataset(
        x_fit, label=np.zeros(len(x_fit)), feature_name=feature_names, params=_lgb_params(p, "l1")
    ).construct()

    models: dict[str, str] = {}
    weights: dict[str, float] = {}
    gates: dict[str, str] = {}
    offsets: dict[str, str] = {}
    sources: dict[str, str] = {}
    validation: dict[str, dict[str, Any]] = {}
    val_pred: dict[str, np.ndarray] = {}
    # Range before high and low: their forecasts may be splits of the final range forecast.
    for name in ("open", "range", "high", "low", "close"):
        col = f"y_{name}"
        y_all = targets[col].to_numpy()
        options = candidates(name, base, split.val)
        # Blend toward, and gate against, the better naive on validation (docs/model.md).
        gates[name] = gate_baseline(name, y_all[split.val], options, c_val)
        b_val = options[gates[name]]
        if name == "open" and not p.fit_open:
            weights[name], val_pred[col] = 0.0, b_val
            continue
        offset = np.zeros(len(y_all))
        if p.anchor_offset and name in ANCHOR_TARGETS:
            offset = offset_values(base, name)
            offsets[name] = HAR
        booster = lgb.train(
            _lgb_params(p, "l1"),
            _relabel(fit_set, y_all[split.fit], offset[split.fit]),
            num_boost_round=p.n_estimators,
        )
        raw = offset[split.val] + np.asarray(booster.predict(x_val))
        if name in ("high", "low"):
            sources[name], raw = pick_source(
                name, y_all[split.val], raw, val_pred["y_range"], anchors.har_split, c_val
            )
        block = max(1, BLOCK_MS // step) if name in SIGNIFICANCE_TARGETS else None
        w, maes = best_weight(name, y_all[split.val], b_val, raw, c_val, p.min_val_skill, block)
        models[name] = booster.model_to_string()
        weights[name] = w
        val_pred[col] = b_val + w * (raw - b_val)
        validation[name] = figures(
            name, y_all[split.val], val_pred[col], options, c_val, gates[name], w, maes
        )

    # Split-conformal interval for the close, normalised by the forecast range so it widens in
    # volatile hours instead of being one width for all.
    y_close_val = targets["y_close"].to_numpy()[split.val]
    scale = np.maximum(val_pred["y_range"], 1e-6)
    scores = np.sort(np.abs(y_close_val - val_pred["y_close"]) / scale)
    rank = min(len(scores), math.ceil((len(scores) + 1) * p.interval_level))
    conformal_q = float(scores[rank - 1])
    y_val = {t: targets[f"y_{t}"].to_numpy()[split.val] for t in QUANTILE_TARGETS}
    points = {t: val_pred[f"y_{t}"] for t in QUANTILE_TARGETS}
    quantile_offsets = {t: conformal_offsets(y_val[t], points[t], scale) for t in QUANTILE_TARGETS}
    validation["quantiles"] = validation_quantiles(y_val, points, base.iloc[split.val], c_val)

    # Multi-candle horizons on the same split: HAR-style LAD per horizon, conformal on validation.
    horizon_models, horizon_validation = fit_horizons(
        grid, positions[split.fit], positions[split.val], anchors
    )
    horizons = {
        "models": [m.to_dict() for m in horizon_models],
        "validation": horizon_validation,
    }

    up = targets["up"].to_numpy()
    climatology = float(np.nanmean(up[np.concatenate([split.fit, split.val])]))
    clf = lgb.train(
        _lgb_params(p, "binary"),
        _relabel(fit_set, up[split.fit], None),
        num_boost_round=p.classifier_estimators,
    )
    raw_up = np.asarray(clf.predict(x_val))
    y_up = up[split.val]
    # Calibrate on the first half of validation, judge the shrinkage on the second half, then
    # refit the calibration on all of validation.
    half = len(raw_up) // 2
    a, b = fit_platt(raw_up[:half], y_up[:half])
    cal_b = apply_platt(raw_up[half:], a, b)
    clim_brier = brier(y_up[half:], np.full(len(cal_b), climatology))
    best_w, best_brier = 0.0, clim_brier
    for w in WEIGHT_GRID[1:]:
        score = brier(y_up[half:], climatology + w * (cal_b - climatology))
        if score < best_brier:
            best_w, best_brier = float(w), score
    # Brier skill must clear the same margin as the regressors, else: climatology.
    if not skill(best_brier, clim_brier) >= p.min_val_skill:
        best_w, best_brier = 0.0, clim_brier
    if best_w > 0:
        # Squared errors through the same paired bootstrap: 1 - sum/sum is the Brier skill.
        shrunk = climatology + best_w * (cal_b - climatology)
        lo, _ = bootstrap_skill_ci(
            (shrunk - y_up[half:]) ** 2,
            (climatology - y_up[half:]) ** 2,
            block=max(1, BLOCK_MS // step),
        )
        if not lo > 0:
            best_w, best_brier = 0.0, clim_brier
    platt = fit_platt(raw_up, y_up)
    validation["direction"] = {
        "weight": best_w,
        "brier": best_brier,
        "brier_baseline": clim_brier,
        "raw_brier": brier(y_up[half:], raw_up[half:]),
    }
    models["direction"] = clf.model_to_string()

    meta = {
        **split.meta,
        "symbol": p.symbol,
        "interval": p.interval,
        "interval_ms": step,
        "rows": len(frame),
        "feature_window": FEATURE_WINDOW,
        "data_fingerprint": data_fingerprint(frame),
        "reference": p.reference,
    }
    order = (*REGRESSION_TARGETS, "direction", "quantiles")
    validation = {k: validation[k] for k in order if k in validation}
    bundle = ModelBundle(
        params=asdict(p),
        feature_names=feature_names,
        model_strings=models,
        weights=weights,
        gate_baselines=gates,
        anchors=anchors.to_dict(),
        offsets=offsets,
        sources=sources,
        quantile_offsets=quantile_offsets,
        horizons=horizons,
        platt=(float(platt[0]), float(platt[1])),
        direction_weight=best_w,
        climatology=climatology,
        conformal_q=conformal_q,
        interval_level=p.interval_level,
        validation=validation,
        meta=meta,
    )
    return bundle, FrameInputs(feats.reset_index(drop=True)[feature_names], base)
