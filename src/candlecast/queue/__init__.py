"""The distributed task queue (procrastinate, on PostgreSQL): every per-pair operation of the
use-case layer as a task, the workers that run them on any host, and the periodic hand-out of
each pair's ticks. SQLite deployments run in one process and never load this package."""

from candlecast.queue.client import QueueClient, uses_queue

__all__ = ["QueueClient", "uses_queue"]
