"""Training in a child process, so the API and the stream keep their latency while trees grow.

The service keeps one warm child (TrainingPool): spawned once, with pandas, LightGBM and the
jobs already imported, and reused for every training. The child takes the train lock itself;
if it is killed (SIGTERM, crash) its transaction never commits, so the previous champion keeps
serving, and the pool spawns a new child. PR_SET_PDEATHSIG ends the child if its parent dies,
so no training process is ever orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from candlecast.domain import CandlecastError, JobAlreadyRunning

if TYPE_CHECKING:
    from candlecast.config import Settings

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
# A child's executor and the future of its warm-up, which yields the child's process id.
_Child = tuple[ProcessPoolExecutor, "Future[int]"]


class TrainingStopped(CandlecastError):
    """The training child was stopped (shutdown); its model was not registered."""


class TrainingCrashed(CandlecastError):
    """The training child died mid-training (killed, out of memory); nothing was saved."""


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


def _warm_child() -> int:
    """Runs first in a new child: imports the modelling stack, so a training starts at once."""
    from candlecast.jobs import preload

    preload.modeling_stack()
    import candlecast.bootstrap  # noqa: F401

    return os.getpid()


def _train_in_child(
    settings_json: str, symbol: str, interval: str, days: float, force: bool
) -> dict[str, Any]:
    from candlecast.bootstrap import bootstrap
    from candlecast.config import Settings
    from candlecast.jobs import modeling
    from candlecast.logs import setup_service_logging

    settings = Settings.model_validate_json(settings_json)
    # A spawned child starts with no logging set up: same format and redaction as its parent.
    setup_service_logging(settings)
    services = bootstrap(settings, migrate=False)
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
        "pid": os.getpid(),
    }


class TrainingPool:
    """One warm training child, reused across trainings, replaced after a crash, ended on stop.

    Owned by the service (built in its wiring); one training at a time per pool.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._busy = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._warm: Future[int] | None = None
        self._stopped = False
        self._requests: queue.SimpleQueue[Future[_Child] | None] = queue.SimpleQueue()
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        """Spawns the child and warms it in the background; training would do so on demand."""
        self._current()

    @property
    def pid(self) -> int | None:
        """The current child's process id, once it is warm; None before start or after stop."""
        with self._guard:
            warm = self._warm
        if warm is None or self._stopped:
            return None
        try:
            return warm.result()
        except Exception:
            # The child died before it was warm (or could not import): there is no pid to give.
            return None

    def train(
        self, settings: Settings, *, symbol: str, interval: str, days: float, force: bool = False
    ) -> dict[str, Any]:
        """Runs modeling.train_model in the warm child and returns its details.

        Raises what the child raised (JobAlreadyRunning, NoData, ...), TrainingStopped when
        stopped meanwhile, TrainingCrashed when the child died (a new one is then ready).
        """
        if not self._busy.acquire(blocking=False):
            raise JobAlreadyRunning(f"train:{symbol}:{interval} is already running")
        try:
            arguments = (settings.model_dump_json(), symbol, interval, days, force)
            executor = self._current()
            try:
                future = executor.submit(_train_in_child, *arguments)
            except BrokenProcessPool:
                # The idle child had died (killed, out of memory): nothing ran, so start afresh.
                self._replace(executor)
                future = self._current().submit(_train_in_child, *arguments)
            except RuntimeError:
                # "cannot schedule new futures after shutdown": stop() came in between.
                raise TrainingStopped("the service is stopping; no training starts") from None
            try:
                return future.result()
            except (Terminated, CancelledError):
                raise TrainingStopped(
                    "training was stopped before it finished; nothing was saved"
                ) from None
            except BrokenProcessPool:
                self._replace(executor)
                if self._stopped:
                    raise TrainingStopped("training was stopped; nothing was saved") from None
                raise TrainingCrashed(
                    "the training process died before it finished; nothing was saved, and a "
                    "new one is ready for the next training"
                ) from None
        finally:
            self._busy.release()

    def stop(self) -> int:
        """Ends the child (SIGTERM if it is training); returns how many trainings were stopped."""
        with self._guard:
            self._stopped = True
            executor, warm = self._executor, self._warm
            self._executor = self._warm = None
        self._requests.put(None)
        if executor is None:
            return 0
        training = self._busy.locked()
        if training and warm is not None and warm.done() and warm.exception() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(warm.result(), signal.SIGTERM)
        # An idle child leaves on the executor's own sentinel, without a traceback.
        executor.shutdown(wait=True, cancel_futures=True)
        return int(training)

    def _current(self) -> ProcessPoolExecutor:
        with self._guard:
            if self._stopped:
                raise TrainingStopped("the service is stopping; no training starts")
            if self._executor is None:
                if self._keeper is None:
                    self._keeper = threading.Thread(
                        target=self._keep, name="candlecast-training-pool", daemon=True
                    )
                    self._keeper.start()
                request: Future[_Child] = Future()
                self._requests.put(request)
                self._executor, self._warm = request.result()
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._guard:
            if self._executor is broken:
                self._executor = self._warm = None
        broken.shutdown(wait=False, cancel_futures=True)
        if not self._stopped:
            log.warning("the training process died; starting a new one")
            self._current()

    def _keep(self) -> None:
        # Every child is spawned from this one long-lived thread: PR_SET_PDEATHSIG fires when
        # the *thread* that spawned a child ends, and API worker threads come and go.
        while True:
            request = self._requests.get()
            if request is None:
                return
            try:
                executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_die_with_parent,
                )
                # The first task spawns the child, from this thread; with one worker, no later
                # task spawns another unless the pool is replaced.
                request.set_result((executor, executor.submit(_warm_child)))
            except BaseException as exc:
                request.set_exception(exc)


def train_isolated(
    settings: Settings, *, symbol: str, interval: str, days: float, force: bool = False
) -> dict[str, Any]:
    """One training in a fresh child, for callers without a pool (the service has one)."""
    pool = TrainingPool()
    try:
        return pool.train(settings, symbol=symbol, interval=interval, days=days, force=force)
    finally:
        pool.stop()
