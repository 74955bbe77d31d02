"""The service on PostgreSQL: the queue workers run every per-pair operation, and this process
streams the pairs of the stream shards whose leases it holds. Which shards it holds changes as
processes come and go; a shard taken over is caught up over REST first."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from candlecast.bootstrap import Services
from candlecast.domain import Pair
from candlecast.jobs.common import now_ms
from candlecast.queue.client import TRAIN_QUEUE, QueueClient
from candlecast.queue.tasks import WorkerParts
from candlecast.queue.worker import QueueWorker, WorkerIdentity
from candlecast.service_stream import StreamRunner
from candlecast.store import queue as queue_store
from candlecast.store.db import write_transaction
from candlecast.stream_leases import ShardLeases, shard_of
from candlecast.usecases import PairOperations

log = logging.getLogger(__name__)


class QueueRunner:
    """This process's part in a PostgreSQL deployment: queue workers and stream shards."""

    def __init__(
        self,
        services: Services,
        operations: PairOperations,
        stream: StreamRunner,
        *,
        queues: list[str] | None,
        concurrency: int,
        on_change: Callable[[], None],
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.operations = operations
        self.stream = stream
        self.client = QueueClient(self.settings, services.engine)
        self._on_change = on_change
        self.worker = QueueWorker(
            WorkerParts(
                operations=operations,
                client=self.client,
                settings=self.settings,
                record_error=self._record_error,
            ),
            queues=queues,
            concurrency=concurrency,
            on_registered=self._record_host,
        )
        self.leases: ShardLeases | None = None
        if self.settings.stream:
            self.leases = ShardLeases(
                self.settings.database_url,
                shards=self.settings.stream_shards,
                on_acquired=self._acquired,
                on_lost=self._lost,
            )
        self._lock = threading.Lock()
        self._streamed: set[Pair] = set()
        # Pairs of shards just taken over: caught up over REST once they are subscribed.
        self._taken_over: set[Pair] = set()

    @property
    def trains(self) -> bool:
        """Whether this process takes training jobs (and so needs its training children)."""
        return TRAIN_QUEUE in self.worker.queues

    def start(self) -> None:
        """Starts the workers and the competition for stream shards."""
        self.worker.start()
        if self.leases is not None:
            self.leases.start()

    def stop(self) -> None:
        """Releases the shards (another process takes them at once) and stops the workers."""
        if self.leases is not None:
            self.leases.stop()
        self.worker.stop()
        self.client.close()

    # Stream shards ----------------------------------------------------------------------------

    def streamed(self) -> set[Pair]:
        """The pairs this process streams now."""
        with self._lock:
            return set(self._streamed)

    def sync_pairs(self, followed: list[Pair]) -> None:
        """Streams exactly the followed pairs of the shards held; called when pairs or shards
        change."""
        owned = self.leases.owned() if self.leases is not None else set()
        shards = self.settings.stream_shards
        wanted = {pair for pair in followed if shard_of(pair, shards) in owned}
        with self._lock:
            added = sorted(wanted - self._streamed)
            removed = sorted(self._streamed - wanted)
            self._streamed = wanted
            catch_up = [pair for pair in added if pair in self._taken_over]
            self._taken_over.intersection_update(wanted - set(added))
        if removed:
            self.stream.remove(removed)
        if added:
            self.stream.add(added)
        if catch_up:
            self.stream.fill_gaps(catch_up)

    def _acquired(self, shard: int) -> None:
        pairs = [
            pair
            for pair in self.operations.followed()
            if shard_of(pair, self.settings.stream_shards) == shard
        ]
        log.info("stream shard %d taken: streaming %d pair(s)", shard, len(pairs))
        # Whatever closed while nobody streamed these pairs comes over REST, from this process
        # once it has subscribed them (sync_pairs). Not as a queued ingest: that one would wait
        # behind the job lock of an ingest the dead holder was running until the dead job is
        # found stalled (15 s or more), and the dispatcher's ingest ticks would join it meanwhile.
        # Should the catch-up fail, the pair's next ingest tick fetches the gap.
        with self._lock:
            self._taken_over.update(pairs)
        self._on_change()

    def _lost(self, shard: int) -> None:
        log.warning("stream shard %d lost; another process takes it", shard)
        self._on_change()

    # Worker bookkeeping -----------------------------------------------------------------------

    def _record_host(self, identity: WorkerIdentity) -> None:
        with write_transaction(self.services.engine) as connection:
            queue_store.register_worker_host(
                connection,
                worker_id=identity.worker_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                name=identity.name,
                queues=",".join(identity.queues),
                concurrency=identity.concurrency,
                started_at=now_ms(),
            )

    def _record_error(self, job_id: int, error: str) -> None:
        try:
            with write_transaction(self.services.engine) as connection:
                queue_store.record_job_error(connection, job_id=job_id, error=error, at=now_ms())
        except Exception:
            log.exception("could not record job %d's error", job_id)
