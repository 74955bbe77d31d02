"""Champion/challenger: compare two bundles on the same recent window where both are unfitted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from candlecast.ml.bundle import ModelBundle
from candlecast.ml.evaluate import join_realized, score_pairs

COMPARED_TARGETS = ("close", "high", "low", "range")
# Fewer scored candles than this and the comparison says nothing; the champion stays.
MIN_COMPARISON_ROWS = 100


def loss(report: dict[str, Any]) -> float:
    """One number, lower is better: mean of MAE/baseline-MAE over targets plus Brier ratio."""
    ratios = []
    for name in COMPARED_TARGETS:
        figures = report["targets"][name]
        if figures["mae"] is None or not figures["baseline_mae"]:
            return float("nan")
        ratios.append(figures["mae"] / figures["baseline_mae"])
    direction = report["direction"]
    if direction["brier"] is not None and direction["brier_baseline"]:
        ratios.append(direction["brier"] / direction["brier_baseline"])
    return float(np.mean(ratios))


def comparison_window(new: ModelBundle, champion: ModelBundle) -> tuple[int, int]:
    """Target open_times both models held out: after both validation starts, up to new's end."""
    start = max(int(new.meta["validation_start_ms"]), int(champion.meta["validation_start_ms"]))
    return start, int(new.meta["train_end_ms"])


def decide(
    new: ModelBundle,
    champion: ModelBundle | None,
    frame: pd.DataFrame,
    new_predictions: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Promote `new` unless it is worse than the champion on their shared held-out window.

    `frame` holds the candles of the window plus enough history before it for features.
    `new_predictions`, when given, are new's predictions over at least the window (for example
    over the whole training frame, already made to be stored); they are not computed again.
    """
    if champion is None:
        return {"promote": True, "reason": "no champion yet"}
    start, end = comparison_window(new, champion)
    step = int(new.meta["interval_ms"])
    scores: dict[str, dict[str, Any]] = {}
    for label, bundle in (("new", new), ("champion", champion)):
        if label == "new" and new_predictions is not None:
            predictions = new_predictions
        else:
            predictions = bundle.predict(frame)
        in_window = (predictions["target_open_time"] >= start) & (
            predictions["target_open_time"] <= end
        )
        pairs = join_realized(predictions[in_window], frame)
        report = score_pairs(pairs, interval_level=bundle.interval_level)
        scores[label] = {"loss": loss(report), "rows": len(pairs), "report": report}
    rows = scores["new"]["rows"]
    decision: dict[str, Any] = {
        "window_start_ms": start,
        "window_end_ms": end + step,
        "rows": rows,
        "new_loss": scores["new"]["loss"],
        "champion_loss": scores["champion"]["loss"],
        "new_targets": scores["new"]["report"]["targets"],
        "champion_targets": scores["champion"]["report"]["targets"],
    }
    if rows < MIN_COMPARISON_ROWS or not np.isfinite(scores["new"]["loss"]):
        return {**decision, "promote": False, "reason": "too few shared held-out candles"}
    champion_loss = scores["champion"]["loss"]
    not_worse = not np.isfinite(champion_loss) or scores["new"]["loss"] <= champion_loss + 1e-12
    reason = "not worse than the champion" if not_worse else "worse than the champion"
    return {**decision, "promote": bool(not_worse), "reason": reason}
