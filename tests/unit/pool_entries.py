"""Training entry points for TrainingPool tests, run in its children instead of train_model:
they test the pool's scheduling, not LightGBM. Importable by name, as a spawned child needs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from candlecast.config import Settings


def meet(
    settings_json: str, symbol: str, interval: str, days: float, force: bool
) -> dict[str, Any]:
    """Marks this training as started in the settings' state folder, then waits up to `days`
    seconds for another training to have started too; says whether it met one."""
    folder = Path(Settings.model_validate_json(settings_json).state_dir or ".")
    started = time.time()
    (folder / f"{symbol}-{interval}.started").touch()
    met = False
    while time.time() - started < days:
        if len(list(folder.glob("*.started"))) >= 2:
            met = True
            break
        time.sleep(0.02)
    return {"pid": os.getpid(), "met": met, "started": started, "ended": time.time()}
