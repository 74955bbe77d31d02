"""A process's queue workers: procrastinate workers on their own event loop and thread, one for
the cheap sync work and one for training, so candles are never late behind trainings. They start
again by themselves after losing the database."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from procrastinate import App
from procrastinate.worker import Worker

from candlecast.queue.client import QUEUES, SYNC_QUEUE, TRAIN_QUEUE, holder_name
from candlecast.queue.connection import worker_connector
from candlecast.queue.tasks import PRUNE_WORKERS_AFTER_SECONDS, WorkerParts, register_tasks

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
# Jobs scheduled for a tick start within this of it (deferrals now are announced by NOTIFY).
POLL_SECONDS = 1.0
# A stopping worker lets running jobs finish this long; the rest are retried elsewhere.
SHUTDOWN_GRACE_SECONDS = 10.0
RESTART_BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class WorkerIdentity:
    """What a worker tells about itself once procrastinate has registered it."""

    worker_id: int
    name: str
    queues: tuple[str, ...]
    concurrency: int


class QueueWorker:
    """Runs this process's queue workers until stopped."""

    def __init__(
        self,
        parts: WorkerParts,
        *,
        queues: list[str] | None,
        concurrency: int,
        on_registered: Callable[[WorkerIdentity], None] | None = None,
    ) -> None:
        self.parts = parts
        self.queues = tuple(queues or QUEUES)
        self.concurrency = concurrency
        self.on_registered = on_registered
        self.holder = holder_name()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._stop_event: asyncio.Event | None = None
        self.started = threading.Event()

    def start(self) -> None:
        """Starts the workers in a background thread."""
        self._thread = threading.Thread(target=self._run, name="candlecast-queue", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = SHUTDOWN_GRACE_SECONDS + 5) -> None:
        """Stops taking jobs, lets running ones finish briefly, and waits for the thread."""
        self._stopping.set()
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                asyncio.run(self._serve())
            except Exception as exc:
                if self._stopping.is_set():
                    break
                log.error("the queue workers stopped: %s; starting them again", exc)
            if time.monotonic() - began > 60:
                attempt = 0
            delay = RESTART_BACKOFF_SECONDS[min(attempt, len(RESTART_BACKOFF_SECONDS) - 1)]
            attempt += 1
            self._stopping.wait(delay)

    def _app(self) -> App:
        url = self.parts.settings.database_url
        trainers = self.parts.settings.train_workers if TRAIN_QUEUE in self.queues else 0
        connector = worker_connector(
            url,
            application_name=f"candlecast-worker:{self.holder}",
            # Every job holds a connection only while procrastinate records its state; the
            # heartbeat, the listener and the periodic deferrer need one each.
            max_size=self.concurrency + trainers + 4,
        )
        app = App(connector=connector)
        register_tasks(app, self.parts.settings)
        return app

    def _workers(self, app: App) -> list[Worker]:
        context = {"parts": self.parts}
        plan: list[tuple[str, int]] = []
        if SYNC_QUEUE in self.queues:
            plan.append((SYNC_QUEUE, self.concurrency))
        if TRAIN_QUEUE in self.queues:
            # One training per child process of the pool: a job taken is a job started.
            plan.append((TRAIN_QUEUE, self.parts.settings.train_workers))
        return [
            Worker(
                app=app,
                queues=[queue],
                name=f"{self.holder}/{queue}",
                concurrency=concurrency,
                fetch_job_polling_interval=POLL_SECONDS,
                update_heartbeat_interval=HEARTBEAT_SECONDS,
                stalled_worker_timeout=PRUNE_WORKERS_AFTER_SECONDS,
                shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
                install_signal_handlers=False,
                additional_context=context,
            )
            for queue, concurrency in plan
        ]

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stopping.is_set():
            return
        app = self._app()
        async with app.open_async():
            workers = self._workers(app)
            runs = [asyncio.create_task(self._run_worker(worker)) for worker in workers]
            announced = asyncio.create_task(self._announce(workers))
            stop = asyncio.create_task(self._stop_event.wait())
            done, _ = await asyncio.wait([*runs, stop], return_when=asyncio.FIRST_COMPLETED)
            for worker in workers:
                worker.stop()  # type: ignore[no-untyped-call]
            announced.cancel()
            results = await asyncio.gather(*runs, return_exceptions=True)
            stop.cancel()
            failures = [result for result in results if isinstance(result, BaseException)]
            if failures and not self._stopping.is_set():
                raise RuntimeError(str(failures[0])) from failures[0]
            if stop not in done and not self._stopping.is_set():
                raise RuntimeError("a queue worker ended by itself")

    @staticmethod
    async def _run_worker(worker: Worker) -> None:
        await worker.run()  # type: ignore[no-untyped-call]

    async def _announce(self, workers: list[Worker]) -> None:
        for worker in workers:
            # procrastinate sets the id when the database has registered the worker, with no
            # event to wait on.
            while worker.worker_id is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            identity = WorkerIdentity(
                worker_id=worker.worker_id,
                name=worker.worker_name or self.holder,
                queues=tuple(worker.queues or ()),
                concurrency=worker.concurrency,
            )
            log.info(
                "queue worker %s (id %d) takes %s jobs, %d at once",
                identity.name,
                identity.worker_id,
                ",".join(identity.queues),
                identity.concurrency,
            )
            if self.on_registered is not None:
                try:
                    await asyncio.to_thread(self.on_registered, identity)
                except Exception:
                    log.exception("could not record the worker's host")
        self.started.set()
