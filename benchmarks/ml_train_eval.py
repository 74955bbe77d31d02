"""Times train() on 90 days of 5m candles and the full walk-forward on the main fixture.

Run: /work/venv/bin/python benchmarks/ml_train_eval.py [--json]
Data: $CANDLECAST_SHARED_DATA or <repo>/../shared/data (never copied into the repo).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from candlecast.ml.evaluate import walk_forward
from candlecast.ml.metrics import mae, skill
from candlecast.ml.train import train

MAIN_CSV = "btcusdt-5m-2025-06-29_2025-10-06.csv"
STEP = 300_000
FOLDS = 6
TRAIN_DAYS = 60
SETUP = {"folds": FOLDS, "train_days": TRAIN_DAYS}


def load(path: Path) -> pd.DataFrame:
    """Reads a shared-data CSV into the store's frame contract."""
    raw = pd.read_csv(path)
    times = pd.to_datetime(raw["open_time"], utc=True).dt.as_unit("ms").astype("int64")
    frame = raw.assign(open_time=times)
    for col in ("quote_volume", "trades", "taker_buy_base", "taker_buy_quote"):
        if col not in frame.columns:
            frame[col] = np.nan
    return frame


def last_range_skill(frame: pd.DataFrame, report: dict[str, Any]) -> dict[str, float]:
    """Skill of the model against the weaker naive 'last range centred on the last close'."""
    rows = frame.set_index("open_time")
    out: dict[str, float] = {}
    start = report["per_fold"][0]["test_start_ms"]
    mask = rows.index >= start
    prev = rows.shift(1)
    half = (prev["high"] - prev["low"]) / 2
    naive = {
        "high": prev["close"] + half,
        "low": prev["close"] - half,
        "range": prev["high"] - prev["low"],
    }
    for name, series in naive.items():
        actual = rows["high"] - rows["low"] if name == "range" else rows[name]
        base = mae(actual[mask].to_numpy(), series[mask].to_numpy())
        out[name] = skill(report["targets"][name]["mae"], base)
    return out


def main() -> None:
    root = Path(os.environ.get("CANDLECAST_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
    frame = load(root / MAIN_CSV)
    last90 = frame.iloc[-90 * 288 :].reset_index(drop=True)
    train(last90)  # warm-up: first-call library initialisation is not training time
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        train(last90)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    report = walk_forward(frame, interval_ms=STEP, folds=FOLDS, train_days=TRAIN_DAYS)
    wf_seconds = time.perf_counter() - t0
    summary = {
        "setup": {**SETUP, "rows": len(frame), "test_rows": report["rows"]},
        "train_90d_median_s": round(statistics.median(times), 3),
        "walk_forward_s": round(wf_seconds, 2),
        "targets": {k: v for k, v in report["targets"].items()},
        "close_interval": report["close_interval"],
        "direction": report["direction"],
        "skill_vs_last_range_centred": last_range_skill(frame, report),
        "per_fold": [
            {
                "start": f["start"],
                "end": f["end"],
                "skill": {k: round(v["skill"], 4) for k, v in f["targets"].items()},
                "coverage": round(f["close_interval"]["coverage"], 4),
                "brier_minus_climatology": f["direction"]["brier"]
                - f["direction"]["brier_baseline"],
                "weights": f["weights"],
            }
            for f in report["per_fold"]
        ],
    }
    if "--json" in sys.argv:
        print(json.dumps(summary, indent=1))
        return
    print(f"train() on 90 days: median {summary['train_90d_median_s']} s of 5 runs")
    print(f"walk-forward {SETUP}: {summary['walk_forward_s']} s, {report['rows']} test candles\n")
    print("| target | MAE | baseline | baseline MAE | skill |\n|---|---|---|---|---|")
    for name, t in report["targets"].items():
        print(f"| {name} | {t['mae']:.3f} | {t['baseline']} | {t['baseline_mae']:.3f} "
              f"| {t['skill']:+.4f} |")  # fmt: skip
    ci, d = report["close_interval"], report["direction"]
    print(f"\nclose interval: level {ci['level']}, coverage {ci['coverage']:.4f}, "
          f"mean width {ci['mean_width']:.1f} USD")  # fmt: skip
    print(f"direction: n {d['n']}, accuracy {d['accuracy']:.4f} {d['accuracy_ci95']}, "
          f"brier {d['brier']:.5f} vs {d['brier_baseline']:.5f}, log loss {d['log_loss']:.5f}, "
          f"ece {d['ece']:.4f}, wda {d['wda']:.4f}")  # fmt: skip
    print(f"skill vs last range centred: {summary['skill_vs_last_range_centred']}")
    for f in summary["per_fold"]:
        print(f)


if __name__ == "__main__":
    main()
