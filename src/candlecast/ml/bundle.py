"""The fitted model bundle: prediction and a versioned, pickle-free serialization."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd

from candlecast.ml.baselines import (
    BASELINE_NAMES,
    STRONG_BASELINE_NAMES,
    STRONG_TARGETS,
    baseline_levels,
    frame_inputs,
)
from candlecast.ml.calibration import apply_platt
from candlecast.ml.targets import reconstruct

FORMAT_MAGIC: Final = b"CCMB"
FORMAT_VERSION: Final = 2
# Version 1 bundles predate gate_baselines; they were blended toward the strong naive.
READABLE_VERSIONS: Final = (1, 2)
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
)


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
    _boosters: dict[str, lgb.Booster] = field(default_factory=dict, repr=False, compare=False)

    def _booster(self, name: str) -> lgb.Booster:
        if name not in self._boosters:
            self._boosters[name] = lgb.Booster(model_str=self.model_strings[name])
        return self._boosters[name]

    def _raw(self, name: str, feats: pd.DataFrame) -> np.ndarray:
        booster = self._booster(name)
        threads = int(self.params.get("num_threads", 1))
        return np.asarray(booster.predict(feats, num_threads=threads))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Forecasts candle t+1 for every row t of the frame; columns are PREDICTION_COLUMNS.

        Rows whose feature history is incomplete (start of the frame, after a gap) still get a
        forecast: the trees route missing features down learned default branches.
        """
        step = int(self.meta["interval_ms"])
        times = frame["open_time"].to_numpy(dtype=np.int64)
        last_close = frame["close"].astype("float64").reset_index(drop=True)
        out = pd.DataFrame({"open_time": times, "target_open_time": times + step})
        out["last_close"] = last_close
        if len(frame) == 0:
            return out.reindex(columns=list(PREDICTION_COLUMNS))
        _, feats, base = frame_inputs(frame, step)
        feats = feats.reset_index(drop=True)[self.feature_names]
        base = base.reset_index(drop=True)
        blended: dict[str, np.ndarray] = {}
        for name in ("open", "high", "low", "close", "range"):
            b = base[self.gate_column(name)].to_numpy(dtype="float64")
            w = self.weights.get(name, 0.0)
            if w > 0 and name in self.model_strings:
                blended[name] = b + w * (self._raw(name, feats) - b)
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
        prob = np.full(len(frame), self.climatology)
        if self.direction_weight > 0:
            cal = apply_platt(self._raw("direction", feats), *self.platt)
            prob = self.climatology + self.direction_weight * (cal - self.climatology)
        out["prob_up"] = prob
        out = pd.concat([out, baseline_levels(last_close, base)], axis=1)
        out["base_prob_up"] = self.climatology
        return out[list(PREDICTION_COLUMNS)]

    def gate_column(self, name: str) -> str:
        """The baseline-returns column that target `name` is blended toward and gated against."""
        default = STRONG_BASELINE_NAMES.get(name, BASELINE_NAMES[name])
        gate = self.gate_baselines.get(name, default)
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
            platt=(float(platt[0]), float(platt[1])),
            direction_weight=doc["direction_weight"],
            climatology=doc["climatology"],
            conformal_q=doc["conformal_q"],
            interval_level=doc["interval_level"],
            validation=doc["validation"],
            meta=doc["meta"],
        )
