"""Processes: `serve` (the API, the dashboard and the service) and `worker` (the service alone).
Builds everything from Settings, logs where things are, and stops cleanly on a signal."""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path

from candlecast.bootstrap import bootstrap
from candlecast.config import Settings
from candlecast.domain import ConfigError, Pair
from candlecast.jobs.common import now_ms
from candlecast.queue.client import uses_queue
from candlecast.runtime import Runtime
from candlecast.service import QueueOptions, Service
from candlecast.store import runs
from candlecast.store.db import normalize_url, sqlite_path
from candlecast.tokens import ensure_api_token
from candlecast.usecases.build import build_operations, pair_trainer

log = logging.getLogger(__name__)


def queue_options(
    settings: Settings, *, queues: list[str] | None = None, concurrency: int | None = None
) -> QueueOptions | None:
    """How this process works on the task queue: on PostgreSQL every per-pair operation is a
    queued task; on SQLite (one process) there is no queue, and asking for one is an error."""
    if not uses_queue(settings):
        if queues is not None or concurrency is not None:
            raise ConfigError(
                "--queues and --concurrency need the task queue, which runs on PostgreSQL; "
                "with SQLite everything runs in this one process"
            )
        return None
    return QueueOptions(queues=queues, concurrency=concurrency or settings.worker_concurrency)


def build(
    settings: Settings, *, scheduler: bool, queue: QueueOptions | None = None
) -> tuple[Service, str, Path | None]:
    """Migrates, provisions the API token, and builds the (not yet started) service."""
    token, path = ensure_api_token(settings)
    settings = settings.model_copy(update={"api_token": token})
    services = bootstrap(settings)
    abandoned = runs.close_abandoned(services.engine, finished_at=now_ms())
    if abandoned:
        log.warning("closed %d job run(s) left running by processes that died", abandoned)
    runtime = Runtime(
        scheduler_enabled=scheduler,
        stream_enabled=scheduler and settings.stream,
        clock=services.clock,
    )
    operations = build_operations(
        services, runtime, trainer=pair_trainer(settings, services.training.train)
    )
    added = operations.seed_pairs()
    if added:
        log.info("following %s (from the configuration)", ", ".join(map(str, added)))
    service = Service(services, runtime, operations, scheduler=scheduler, queue=queue)
    return service, token, path


def _pair_list(pairs: list[Pair], shown: int = 20) -> str:
    """`A:5m, B:1h` for the start-up log; a long list ends with how many more there are."""
    text = ", ".join(map(str, pairs[:shown])) or "none yet"
    return text if len(pairs) <= shown else f"{text} and {len(pairs) - shown} more"


def data_location(settings: Settings) -> str:
    """Where the data lives, for the start-up log: the SQLite file, or the PostgreSQL host and
    database (never the password)."""
    url = normalize_url(settings.database_url)
    path = sqlite_path(url)
    if path is not None:
        return f"SQLite file {path.resolve()}"
    if url.get_backend_name() == "sqlite":
        return "SQLite in memory"
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"PostgreSQL database {url.database} on {host} as {url.username}"


def run_worker(
    settings: Settings, *, queues: list[str] | None = None, concurrency: int | None = None
) -> None:
    """Runs the work without the HTTP API until SIGTERM or Ctrl-C: on PostgreSQL the queue's
    tasks and this process's stream shards, on SQLite the scheduler and the stream."""
    import signal

    options = queue_options(settings, queues=queues, concurrency=concurrency)
    service, _, _ = build(settings, scheduler=True, queue=options)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    service.start()
    log.info("worker running for %s", _pair_list(service.operations.followed()))
    stopped.wait()
    service.stop()
    service.services.close()


def run_serve(settings: Settings, *, host: str, port: int, scheduler: bool) -> None:
    """Runs the API and dashboard, and (unless disabled) the scheduler and stream."""
    import uvicorn

    from candlecast.api.app import create_app
    from candlecast.logs import redact

    service, token, path = build(
        settings, scheduler=scheduler, queue=queue_options(settings) if scheduler else None
    )
    redact(token)
    app = create_app(service.services, service.runtime, operations=service.operations)
    # What is imported and built by now lives as long as the process: out of the collector's
    # reach, a full collection (one a large /api/series answer triggers, say) walks only what
    # requests made. Once, here, before any other thread of this process runs.
    gc.freeze()
    # Warm the default pair's charts at start, so its first chart request does not pay for the
    # full read; the API keeps held pairs current after each refresh.
    default = service.operations.default_pair()
    threading.Thread(target=app.state.context.warm_columns, args=(default,), daemon=True).start()
    # The proxy strips the prefix; uvicorn puts it back into root_path for links and docs.
    # log_config=None: uvicorn's lines go through candlecast's handler (format, redaction).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        lifespan="on",
        log_config=None,
        root_path=settings.root_path,
        access_log=settings.access_log,
    )
    server = uvicorn.Server(config)
    where = f"in {path} (owner-only)" if path else "CANDLECAST_API_TOKEN"
    log.info("candlecast serving on http://%s:%d%s/", host, port, settings.root_path)
    log.info("API token (for POST routes): %s", where)
    log.info("data: %s", data_location(settings))
    followed = service.operations.followed()
    log.info("pairs followed: %s", _pair_list(followed))
    service.start()
    try:
        server.run()
    finally:
        service.stop()
        service.services.close()
