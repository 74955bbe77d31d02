"""Training in a child process, so the API and the stream keep their latency while trees grow.

The child takes the train lock itself; if it is killed (SIGTERM, crash) its transaction never
commits, so the previous champion keeps serving. PR_SET_PDEATHSIG ends the child if its parent
dies, so no training process is ever orphaned.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from candlecast.config import Settings
from candlecast.domain import CandlecastError

_PR_SET_PDEATHSIG = 1
_executors: list[ProcessPoolExecutor] = []
_executors_lock = threading.Lock()


class TrainingStopped(CandlecastError):
    """The training child was stopped (shutdown); its model was not registered."""


class Terminated(BaseException):
    """Raised in the child on SIGTERM so the open transaction rolls back and the run is closed."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated("training stopped by SIGTERM")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The parent handles Ctrl-C; the child only stops when told to, or when the parent dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_terminated)


def _train_in_child(
    settings_json: str, symbol: str, interval: str, days: float, force: bool
) -> dict[str, Any]:
    from candlecast.bootstrap import bootstrap
    from candlecast.jobs import modeling

    services = bootstrap(Settings.model_validate_json(settings_json), migrate=False)
    try:
        outcome = modeling.train_model(
            services.engine, symbol=symbol, interval=interval, days=days, force=force
        )
    finally:
        services.close()
    return {
        "skipped": outcome.skipped,
        "model_id": outcome.model_id,
        "promoted": outcome.promoted,
        **outcome.details,
    }


def train_isolated(
    settings: Settings, *, symbol: str, interval: str, days: float, force: bool = False
) -> dict[str, Any]:
    """Runs modeling.train_model in a fresh child process and returns its details.

    Raises what the child raised (JobAlreadyRunning, NoData, ...).
    """
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_die_with_parent)
    with _executors_lock:
        _executors.append(executor)
    try:
        future = executor.submit(
            _train_in_child, settings.model_dump_json(), symbol, interval, days, force
        )
        try:
            return future.result()
        except Terminated:
            message = "training was stopped before it finished; nothing was saved"
            raise TrainingStopped(message) from None
    finally:
        with _executors_lock:
            _executors.remove(executor)
        executor.shutdown(wait=True, cancel_futures=True)


def terminate_all() -> int:
    """Stops every running training child (used on shutdown); returns how many were stopped."""
    stopped = 0
    with _executors_lock:
        executors = list(_executors)
    for executor in executors:
        for process in list(getattr(executor, "_processes", {}).values()):
            if process.is_alive():
                process.terminate()
                stopped += 1
    return stopped
