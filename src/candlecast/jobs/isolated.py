"""Training in child processes, so the API and the stream keep their latency while trees grow.

The service keeps a pool of warm children (TrainingPool, owned by Services as
services.training): each is spawned once, with pandas, LightGBM and the jobs already imported,
and reused for every training. There are at most CANDLECAST_TRAIN_WORKERS of them, started as
trainings need them, so that many pairs never train at the same instant: a training beyond that
waits for a child to come free. A child takes the train lock itself; if it is killed (SIGTERM,
crash) its transaction never commits, so the previous champion keeps serving, and the pool
spawns a new child in its place. PR_SET_PDEATHSIG ends a child if its parent dies, so no
training process is ever orphaned.
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
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from candlecast.domain import CandlecastError, JobAlreadyRunning

if TYPE_CHECKING:
    from candlecast.config import Settings

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
# A new child's executor and the future of its warm-up, which yields the child's process id.
_Spawned = tuple[ProcessPoolExecutor, "Future[int]"]
# What a child runs for a training: (settings JSON, symbol, interval, days, force) -> details.
TrainEntry = Callable[[str, str, str, float, bool], dict[str, Any]]


class TrainingStopped(CandlecastError):
    """The training child was stopped (shutdown); its model was not registered."""


class TrainingCrashed(CandlecastError):
    """The training child died mid-training (killed, out of memory); nothing was saved."""


class Terminated(BaseException):
    """Raised in the child on SIGTERM so the open transaction rolls back and the run is closed."""


# The pool's process, as the child saw it at start: a different parent later means it died.
_parent_pid: list[int] = []


def _raise_terminated(_signum: int, _frame: object) -> None:
    if _parent_pid and os.getppid() != _parent_pid[0]:
        # The parent died (killed with SIGKILL): nobody waits for a result, and unwinding
        # would leave this child waiting on the pool's pipes. Its open transaction, if any,
        # is rolled back by the server when the connection drops.
        os._exit(143)
    raise Terminated("training stopped by SIGTERM")


def _die_with_parent() -> None:
    _parent_pid.append(os.getppid())
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
        # One thread per training: the pool's size (CANDLECAST_TRAIN_WORKERS) is the
        # parallelism. LightGBM's two OpenMP threads, spinning against the API, the stream and
        # other trainings on a small machine, took 19-37 s where one thread took 5 s.
        outcome = modeling.train_model(
            services.engine,
            symbol=symbol,
            interval=interval,
            days=days,
            force=force,
            params={"num_threads": 1},
            reference=settings.reference_symbol or None,
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


@dataclass
class _Child:
    """One warm child: its executor (one worker), the future of its warm-up, which yields the
    child's process id, and whether a training holds it."""

    executor: ProcessPoolExecutor
    warm: Future[int]
    busy: bool = False


class TrainingPool:
    """Up to `workers` warm training children, reused across trainings, replaced after a crash,
    ended on stop.

    Owned by Services. A training waits for a free child; two trainings of one pair at once are
    refused (JobAlreadyRunning). `entry` is what a child runs, with (settings JSON, symbol,
    interval, days, force); it must be importable by name in the child.
    """

    def __init__(self, workers: int = 1, *, entry: TrainEntry = _train_in_child) -> None:
        if workers < 1:
            raise ValueError("a training pool needs at least one worker")
        self.workers = workers
        self._entry = entry
        # Guards everything below; notified when a child comes free, is added, or on stop.
        self._cond = threading.Condition()
        self._children: list[_Child] = []
        self._starting = 0  # children being spawned, counted against `workers`
        self._waiting = 0
        self._pairs: set[tuple[str, str]] = set()
        self._stopped = False
        self._requests: queue.SimpleQueue[Future[_Spawned] | None] = queue.SimpleQueue()
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        """Spawns one child and warms it in the background; more start as trainings need them."""
        with self._cond:
            self._check_running()
            if self._children or self._starting:
                return
            self._starting += 1
        self._spawn(None, busy=False)

    @property
    def pids(self) -> list[int]:
        """The children's process ids, once warm (this waits for a warming child); empty before
        start or after stop."""
        with self._cond:
            if self._stopped:
                return []
            warms = [child.warm for child in self._children]
        pids = []
        for warm in warms:
            try:
                pids.append(warm.result())
            except Exception:
                # The child died before it was warm (or could not import): it has no pid to give.
                continue
        return pids

    @property
    def pid(self) -> int | None:
        """The first child's process id (see pids), or None."""
        pids = self.pids
        return pids[0] if pids else None

    @property
    def waiting(self) -> int:
        """How many trainings are waiting for a free child."""
        with self._cond:
            return self._waiting

    def train(
        self, settings: Settings, *, symbol: str, interval: str, days: float, force: bool = False
    ) -> dict[str, Any]:
        """Runs modeling.train_model in a warm child and returns its details; waits for a free
        child when all `workers` are training.

        Raises what the child raised (JobAlreadyRunning, NoData, ...), JobAlreadyRunning at once
        when this pool is already training the pair, TrainingStopped when stopped meanwhile
        (waiting or training), TrainingCrashed when the child died (a new one is then ready).
        """
        pair = (symbol, interval)
        with self._cond:
            self._check_running()
            if pair in self._pairs:
                raise JobAlreadyRunning(f"train:{symbol}:{interval} is already running")
            self._pairs.add(pair)
        try:
            child = self._acquire()
            try:
                return self._run(child, (settings.model_dump_json(), symbol, interval, days, force))
            finally:
                with self._cond:
                    child.busy = False
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._pairs.discard(pair)

    def stop(self) -> int:
        """Ends the children (SIGTERM to those training) and the waits for one; returns how many
        trainings were stopped."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            # A child being spawned joins the list first, so that it is ended with the others.
            while self._starting:
                self._cond.wait()
            children, self._children = self._children, []
            training = [child for child in children if child.busy]
        for child in training:
            if child.warm.done() and child.warm.exception() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.warm.result(), signal.SIGTERM)
        # An idle child leaves on the executor's own sentinel, without a traceback.
        for child in children:
            child.executor.shutdown(wait=True, cancel_futures=True)
        # The keeper ends last: its children get PR_SET_PDEATHSIG's SIGTERM when it does.
        self._requests.put(None)
        return len(training)

    def _check_running(self) -> None:
        if self._stopped:
            raise TrainingStopped("the service is stopping; no training starts")

    def _acquire(self) -> _Child:
        """A free child, marked busy: an idle one, else a new one while fewer than `workers`
        exist, else the first to come free. stop() ends the wait with TrainingStopped."""
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    self._check_running()
                    for child in self._children:
                        if not child.busy:
                            child.busy = True
                            return child
                    if len(self._children) + self._starting < self.workers:
                        self._starting += 1
                        break
                    self._cond.wait()
            finally:
                self._waiting -= 1
        return self._spawn(None, busy=True)

    def _run(self, child: _Child, arguments: tuple[str, str, str, float, bool]) -> dict[str, Any]:
        try:
            try:
                future = child.executor.submit(self._entry, *arguments)
            except BrokenProcessPool:
                # The idle child had died (killed, out of memory): nothing ran, so start afresh.
                self._replace(child)
                future = child.executor.submit(self._entry, *arguments)
        except BrokenProcessPool:
            raise TrainingCrashed("a new training process died before it trained") from None
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
            if self._stopped:
                raise TrainingStopped("training was stopped; nothing was saved") from None
            self._replace(child)
            raise TrainingCrashed(
                "the training process died before it finished; nothing was saved, and a "
                "new one is ready for the next training"
            ) from None

    def _replace(self, child: _Child) -> None:
        """Spawns a new child in the place of one that died (its executor is broken)."""
        child.executor.shutdown(wait=False, cancel_futures=True)
        with self._cond:
            self._check_running()
            self._starting += 1
        log.warning("a training process died; starting a new one")
        self._spawn(child, busy=child.busy)

    def _spawn(self, slot: _Child | None, *, busy: bool) -> _Child:
        """A new child, spawned by the keeper thread, put in `slot` or in a new one. The caller
        counted it in _starting (under the lock); this uncounts it."""
        try:
            with self._cond:
                if self._keeper is None:
                    self._keeper = threading.Thread(
                        target=self._keep, name="candlecast-training-pool", daemon=True
                    )
                    self._keeper.start()
            request: Future[_Spawned] = Future()
            self._requests.put(request)
            executor, warm = request.result()
        except BaseException:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            self._starting -= 1
            if slot is None:
                slot = _Child(executor, warm, busy=busy)
                self._children.append(slot)
            else:
                slot.executor, slot.warm = executor, warm
            self._cond.notify_all()
        # stop() came meanwhile: it ends this child with the others.
        self._check_running()
        return slot

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
                # task spawns another unless the child is replaced.
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
