"""The `train` command's cuts outside train() keep its results exact, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, Float, cast, select

from candlecast.jobs import modeling
from candlecast.ml.promotion import decide
from candlecast.store import candle_reads
from candlecast.store.candle_rows import pair_conditions
from candlecast.store.tables import candles
from tests.integration.api_support import STEP, load

FAST = {"n_estimators": 5, "min_val_skill": -10.0}


def test_read_frame_equals_the_row_by_row_read(engine: Engine) -> None:
    last = load(engine, days=2)
    with engine.connect() as connection:
        frame = candle_reads.read_frame(connection, symbol="BTCUSDT", interval="5m")
        window = candle_reads.read_frame(
            connection, symbol="BTCUSDT", interval="5m", start=last - 10 * STEP, end=last
        )
        empty = candle_reads.read_frame(connection, symbol="ETHUSDT", interval="5m")
        names = candle_reads.FRAME_COLUMNS
        columns = [candles.c.open_time] + [cast(candles.c[n], Float).label(n) for n in names[1:]]
        rows = connection.execute(
            select(*columns).where(*pair_conditions("BTCUSDT", "5m")).order_by(candles.c.open_time)
        ).all()
    expected = pd.DataFrame(rows, columns=list(names)).astype(
        {"open_time": np.int64} | {name: np.float64 for name in names[1:]}
    )
    pd.testing.assert_frame_equal(frame, expected)
    assert len(frame) == 2 * 288
    assert window["open_time"].tolist() == list(range(last - 10 * STEP, last + 1, STEP))
    assert empty.empty and list(empty.columns) == list(names)


def test_the_champion_comparison_on_the_window_equals_the_whole_frame(engine: Engine) -> None:
    last = load(engine, days=6)
    first = modeling.train_model(engine, symbol="BTCUSDT", interval="5m", days=6, params=FAST)
    load(engine, days=1, first=last + STEP)
    heard: list[str] = []
    second = modeling.train_model(
        engine, symbol="BTCUSDT", interval="5m", days=6, params=FAST, on_stage=heard.append
    )
    assert [stage.split(" ")[0] for stage in heard] == [
        "loading",
        "fitting",
        "comparing",
        "storing",
    ]
    champion = modeling.load_bundle(engine, int(first.model_id or 0))
    new = modeling.load_bundle(engine, int(second.model_id or 0))
    with engine.connect() as connection:
        frame = modeling._window_frame(
            connection, symbol="BTCUSDT", interval="5m", days=6, reference=None
        )
    compared = modeling._comparison_frame(engine, frame, new, champion)
    assert len(compared) < len(frame) // 2  # the cut is real
    whole = decide(new, champion, frame)
    cut = decide(new, champion, compared)
    for key in ("promote", "reason", "rows", "window_start_ms", "window_end_ms"):
        assert cut[key] == whole[key], key
    # Sums over the same rows in another index order may differ in the last bit, no more.
    assert _flat(cut) == pytest.approx(_flat(whole), rel=1e-9, abs=1e-12, nan_ok=True)
    assert cut["rows"] >= 100


def _flat(value: Any, path: str = "") -> dict[str, float]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{path}/{key}").items()
        }
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}/{i}").items()}
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return {}
    return {path: float(value)}


def test_preloading_lightgbm_leaves_scikit_learn_unloaded_but_importable() -> None:
    script = (
        "import sys\n"
        "from candlecast.jobs import preload\n"
        "preload.modeling_stack()\n"
        "assert 'lightgbm' in sys.modules and 'candlecast.jobs.modeling' in sys.modules\n"
        "assert 'sklearn' not in sys.modules, 'sklearn loaded'\n"
        "import sklearn.base\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
