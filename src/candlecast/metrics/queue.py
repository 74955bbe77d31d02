"""The task queue's Prometheus families, from the figures read with the other database ones.

Only on PostgreSQL: where there is no queue (SQLite) the families are absent, not zero, so a
dashboard cannot mistake "no queue" for "an idle queue".
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from candlecast.store.queue import QueueFigures


def queue_families(figures: QueueFigures) -> Iterator[Metric]:
    """candlecast_queue_* from one read of the queue."""
    jobs = GaugeMetricFamily(
        "candlecast_queue_jobs",
        "Task-queue jobs, by queue, task and status (kept jobs only: deleted ones are gone)",
        labels=("queue", "task", "status"),
    )
    for count in figures.jobs:
        jobs.add_metric([count.queue, count.task, count.status], count.count)
    waiting = GaugeMetricFamily(
        "candlecast_queue_waiting",
        "Jobs due now that no worker has taken yet, by queue",
        labels=("queue",),
    )
    oldest = GaugeMetricFamily(
        "candlecast_queue_oldest_waiting_seconds",
        "How long the oldest job due now has waited for a worker, by queue (0 when none waits)",
        labels=("queue",),
    )
    for depth in figures.queues:
        waiting.add_metric([depth.queue], depth.waiting)
        oldest.add_metric([depth.queue], depth.oldest_waiting_seconds or 0.0)
    retries = CounterMetricFamily(
        "candlecast_queue_retries",
        "Jobs put back in line after a failure, automatically or by `candlecast jobs --retry` "
        "(deleting jobs deletes their events, which reads as a counter reset)",
    )
    retries.add_metric([], figures.retries)
    workers = GaugeMetricFamily(
        "candlecast_queue_workers", "Queue workers with a heartbeat in the last 30 s"
    )
    workers.add_metric([], len(figures.workers))
    yield from (jobs, waiting, oldest, retries, workers)
