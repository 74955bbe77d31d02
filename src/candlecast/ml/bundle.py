"""The fitted model bundle: prediction and a versioned, pickle-free serialization."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd

from candlecast.ml.anchors import ANCHOR_TARGETS, Anchors, split_range
from candlecast.ml.baselines import (
    ANCHOR_NAMES,
    BASELINE_NAMES,
    STRONG_BASELINE_NAMES,
    STRONG_TARGETS,
    anchor_levels,
    baseline_levels,
    frame_inputs,
    offset_values,
    with_anchors,
)
from candlecast.ml.calibration import apply_platt
from candlecast.ml.horizons import HorizonForecast, HorizonModel, predict_horizons, to_forecast
from candlecast.ml.quantiles import (
    GAUSS_COLUMNS,
    LEVELS,
    QUANTILE_COLUMNS,
    QUANTILE_TARGETS,
    column,
    return_quantiles,
    to_levels,
)
from candlecast.ml.targets import reconstruct

FORMAT_MAGIC: Final = b"CCMB"
FORMAT_VERSION: Final = 4
# Version 1 bundles predate gate_baselines; they were blended toward the strong naive.
# Version 2 bundles predate the anchors (no HAR/EWMA columns, no residual offsets).
# Version 3 bundles predate the multi-candle horizons (forecast_horizons returns []).
READABLE_VERSIONS: Final = (1, 2, 3, 4)
PREDICTION_COLUMNS: Final = (
    "open_time",
    "target_open_time",
    "last_close",
    "open_next",
    "high_next",
    "low_next",
    "close_next",
    "range_next",
    "close_lo",
    "close_hi",
    "prob_up",
    "base_open_next",
    "base_high_next",
    "base_low_next",
    "base_close_next",
    "base_range_next",
    "base_prob_up",
    "strong_base_high_next",
    "strong_base_low_next",
    "strong_base_range_next",
    *(f"base_{p}_{t}_next" for p in ANCHOR_NAMES.values() for t in ANCHOR_TARGETS),
    *GAUSS_COLUMNS,
    *QUANTILE_COLUMNS,
)


@dataclass(frozen=True, slots=True)
class FrameInputs:
    """A frame's model features (in feature_names order) and baseline returns, row-aligned.

    train_with_inputs returns the ones it fitted on, so that predicting the training frame right
    after training does not build them a second time.
    """

    features: pd.DataFrame
    base: pd.DataFrame


@dataclass(slots=True)
class ModelBundle:
    """All fitted models of one training run plus what is needed to trust and reproduce them.

    Regressor `name` predicts baseline + weights[name] * (model - baseline) in return space, where
    baseline is the naive named by gate_baselines[name] (the better one on validation); a weight
    of 0 means validation found no skill over it and the forecast is that baseline itself.
    """

    params: dict[str, Any]
    feature_names: list[str]
    model_strings: dict[str, str]
    weights: dict[str, float]
    platt: tuple[float, float]
    direction_weight: float
    climatology: float
    conformal_q: float
    interval_level: float
    validation: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    gate_baselines: dict[str, str] = field(default_factory=dict)
    # anchors.Anchors.to_dict() of the fitted HAR/EWMA anchors; None for format 1-2 bundles.
    anchors: dict[str, Any] | None = None
    # target -> anchor whose forecast the target's booster adds its output to (residual model).
    offsets: dict[str, str] = field(default_factory=dict)
    # high/low -> "model" (its own booster), "range_split" (the final range forecast split with
    # the HAR split fractions) or "mean" of both; absent means "model".
    sources: dict[str, str] = field(default_factory=dict)
    # target -> conformal offsets per quantiles.LEVELS, in units of the range forecast.
    quantile_offsets: dict[str, list[float]] = field(default_factory=dict)
    # {"models": [horizons.HorizonModel.to_dict()...], "validation": {...}}; None before format 4.
    horizons: dict[str, Any] | None = None
    _boosters: dict[str, lgb.Booster] = field(default_factory=dict, repr=False, compare=False)

    def _booster(self, name: str) -> lgb.Booster:
        if name not in self._boosters:
            self._boosters[name] = lgb.Booster(model_str=self.model_strings[name])
        return self._boosters[name]

    def _raw(self, name: str, feats: pd.DataFrame) -> np.ndarray:
        booster = self._booster(name)
        threads = int(self.params.get("num_threads", 1))
        return np.asarray(booster.predict(feats, num_threads=threads))

    def inputs(self, frame: pd.DataFrame) -> FrameInputs:
        """The frame's features and baseline returns, as predict needs them."""
        step = int(self.meta["interval_ms"])
        grid, feats, base = frame_inputs(frame, step)
        anchors = Anchors.from_dict(self.anchors) if self.anchors else None
        anchor_feats, base = with_anchors(anchors, grid, frame, base)
        feats = pd.concat([feats, anchor_feats], axis=1)
        return FrameInputs(feats.reset_index(drop=True)[self.feature_names], base)

    def predict(self, frame: pd.DataFrame, inputs: FrameInputs | None = None) -> pd.DataFrame:
        """Forecasts candle t+1 for every row t of the frame; columns are PREDICTION_COLUMNS.

        Rows whose feature history is incomplete (start of the frame, after a gap) still get a
        forecast: the trees route missing features down learned default branches. `inputs`,
        when given, must be this bundle's inputs(frame) (train_with_inputs returns them).
        """
        step = int(self.meta["interval_ms"])
        times = frame["open_time"].to_numpy(dtype=np.int64)
        last_close = frame["close"].astype("float64").reset_index(drop=True)
        out = pd.DataFrame({"open_time": times, "target_open_time": times + step})
        out["last_close"] = last_close
        if len(frame) == 0:
            return out.reindex(columns=list(PREDICTION_COLUMNS))
        if inputs is None:
            inputs = self.inputs(frame)
        if len(inputs.features) != len(frame):
            raise ValueError(f"inputs have {len(inputs.features)} rows, the frame {len(frame)}")
        feats = inputs.features
        base = inputs.base.reset_index(drop=True)
        blended: dict[str, np.ndarray] = {}
        for name in ("open", "range", "high", "low", "close"):
            b = base[self.gate_column(name)].to_numpy(dtype="float64")
            w = self.weights.get(name, 0.0)
            if w > 0 and name in self.model_strings:
                raw = self._raw(name, feats)
                if name in self.offsets:
                    raw = raw + offset_values(base, name)
                if name in ("high", "low"):
                    raw = self._with_source(name, raw, blended["range"])
                blended[name] = b + w * (raw - b)
            else:
                blended[name] = b
        levels = reconstruct(
            last_close,
            blended["open"],
            blended["high"],
            blended["low"],
            blended["close"],
            blended["range"],
        )
        out = pd.concat([out, levels], axis=1)
        half_width = self.conformal_q * np.maximum(np.nan_to_num(blended["range"]), 1e-6)
        out["close_lo"] = out["close_next"] * np.exp(-half_width)
        out["close_hi"] = out["close_next"] * np.exp(half_width)
        out = pd.concat([out, self._quantiles(blended, last_close.to_numpy())], axis=1)
        if self.quantile_offsets:
            # One story on the chart: the 90% interval is the fan's 5-95% band.
            out["close_lo"] = out[column("close", 0.05)]
            out["close_hi"] = out[column("close", 0.95)]
        prob = np.full(len(frame), self.climatology)
        if self.direction_weight > 0:
            cal = apply_platt(self._raw("direction", feats), *self.platt)
            prob = self.climatology + self.direction_weight * (cal - self.climatology)
        out["prob_up"] = prob
        out = pd.concat(
            [out, baseline_levels(last_close, base), anchor_levels(last_close, base)], axis=1
        )
        out["base_prob_up"] = self.climatology
        for t in QUANTILE_TARGETS:
            out[f"base_gauss_sd_{t}"] = base[f"gauss_sd_{t}"].to_numpy()
        return out[list(PREDICTION_COLUMNS)]

    @property
    def reference(self) -> str | None:
        """The symbol of the pair (same interval) whose candles this bundle's features read;
        predict's frame must carry them (features.attach_reference). None for most bundles."""
        reference = self.params.get("reference")
        return None if reference is None else str(reference)

    def horizon_models(self) -> list[HorizonModel]:
        """The fitted multi-candle horizon models; [] for bundles trained without them."""
        if not self.horizons or self.anchors is None:
            return []
        return [HorizonModel.from_dict(doc) for doc in self.horizons["models"]]

    def predict_horizons(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """Every horizon's forecast from every row of the frame (horizons.predict_horizons);
        None for bundles without horizon models."""
        models = self.horizon_models()
        if not models or self.anchors is None or len(frame) == 0:
            return None
        return predict_horizons(frame, Anchors.from_dict(self.anchors), models)

    def forecast_horizons(self, frame: pd.DataFrame) -> list[HorizonForecast]:
        """One forecast per horizon from the LAST row of the frame (the candle history as
        predict takes it); [] for bundles without horizon models."""
        table = self.predict_horizons(frame)
        if table is None:
            return []
        last = int(frame["open_time"].iloc[-1])
        return [to_forecast(row) for _, row in table[table["open_time"] == last].iterrows()]

    def _quantiles(self, blended: dict[str, np.ndarray], last_close: np.ndarray) -> pd.DataFrame:
        """Price quantiles per QUANTILE_COLUMNS; NaN for bundles without quantile offsets."""
        if not self.quantile_offsets:
            return pd.DataFrame(np.nan, index=range(len(last_close)), columns=QUANTILE_COLUMNS)
        points = {t: blended[t] for t in QUANTILE_TARGETS}
        returns = return_quantiles(self.quantile_offsets, points, blended["range"])
        parts = {}
        for t in QUANTILE_TARGETS:
            levels = to_levels(t, returns[t], last_close)
            for i, q in enumerate(LEVELS):
                parts[column(t, q)] = levels[:, i]
        return pd.DataFrame(parts)

    def _with_source(self, name: str, raw: np.ndarray, final_range: np.ndarray) -> np.ndarray:
        source = self.sources.get(name, "model")
        if source == "model" or self.anchors is None:
            return raw
        split = Anchors.from_dict(self.anchors).har_split
        from_range = split_range(final_range, split)[0 if name == "high" else 1]
        if source == "range_split":
            return from_range
        if source == "mean":
            return np.asarray((raw + from_range) / 2)
        raise ValueError(f"unknown forecast source {source!r} for {name}")

    def gate_column(self, name: str) -> str:
        """The baseline-returns column that target `name` is blended toward and gated against."""
        default = STRONG_BASELINE_NAMES.get(name, BASELINE_NAMES[name])
        gate = self.gate_baselines.get(name, default)
        if name in ANCHOR_TARGETS and gate in ANCHOR_NAMES:
            return f"{ANCHOR_NAMES[gate]}_y_{name}"
        if name in STRONG_TARGETS and gate == STRONG_BASELINE_NAMES[name]:
            return f"strong_y_{name}"
        if gate != BASELINE_NAMES[name]:
            raise ValueError(f"unknown baseline {gate!r} for {name}")
        return f"y_{name}"

    def to_bytes(self) -> bytes:
        """Serializes to FORMAT_MAGIC + version + zlib(JSON); boosters as LightGBM model text."""
        doc = {
            "format_version": FORMAT_VERSION,
            "params": self.params,
            "feature_names": self.feature_names,
            "model_strings": self.model_strings,
            "weights": self.weights,
            "gate_baselines": self.gate_baselines,
            "anchors": self.anchors,
            "offsets": self.offsets,
            "sources": self.sources,
            "quantile_offsets": self.quantile_offsets,
            "horizons": self.horizons,
            "platt": list(self.platt),
            "direction_weight": self.direction_weight,
            "climatology": self.climatology,
            "conformal_q": self.conformal_q,
            "interval_level": self.interval_level,
            "validation": self.validation,
            "meta": self.meta,
        }
        body = zlib.compress(json.dumps(doc, sort_keys=True, allow_nan=True).encode(), 6)
        return FORMAT_MAGIC + FORMAT_VERSION.to_bytes(2, "big") + body

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelBundle:
        """Restores a bundle written by to_bytes; raises ValueError on a foreign or newer blob."""
        if data[:4] != FORMAT_MAGIC:
            raise ValueError("not a candlecast model bundle (bad magic)")
        version = int.from_bytes(data[4:6], "big")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"model bundle format {version} is not supported {READABLE_VERSIONS}")
        doc = json.loads(zlib.decompress(data[6:]))
        platt = doc["platt"]
        return cls(
            params=doc["params"],
            feature_names=doc["feature_names"],
            model_strings=doc["model_strings"],
            weights=doc["weights"],
            gate_baselines=doc.get("gate_baselines", {}),
            anchors=doc.get("anchors"),
            offsets=doc.get("offsets", {}),
            sources=doc.get("sources", {}),
            quantile_offsets=doc.get("quantile_offsets", {}),
            horizons=doc.get("horizons"),
            platt=(float(platt[0]), float(platt[1])),
            direction_weight=doc["direction_weight"],
            climatology=doc["climatology"],
            conformal_q=doc["conformal_q"],
            interval_level=doc["interval_level"],
            validation=doc["validation"],
            meta=doc["meta"],
        )
