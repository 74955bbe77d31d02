"""Service and schema commands: serve, worker, db upgrade and db current."""

from __future__ import annotations

from typing import Annotated

import typer

from candlecast.cli.common import (
    DatabaseOption,
    app,
    db_app,
    friendly,
    out,
    settings_from,
)
from candlecast.domain import ConfigError
from candlecast.logs import setup_service_logging

ServicePairsOption = Annotated[
    str | None,
    typer.Option(
        "--pairs",
        "-p",
        help="Pairs to follow, SYMBOL:INTERVAL,... [default: CANDLECAST_PAIRS]. Like the "
        "variable, they seed the database's pair list: pairs never followed before are added; "
        "`candlecast pairs remove` drops one",
    ),
]


def _pairs(value: str | None) -> str | None:
    # An empty value would silently mean "the configured pairs": say so instead.
    if value is not None and not value.strip():
        raise ConfigError("--pairs: give SYMBOL:INTERVAL[,SYMBOL:INTERVAL...]")
    return value


@app.command()
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Serve the API only: no jobs, no stream, and on PostgreSQL no queue worker "
            "(run `candlecast worker` elsewhere)",
        ),
    ] = False,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", hidden=True, help="The old name of --no-worker")
    ] = False,
    pairs: ServicePairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Run the API and the dashboard, with the jobs and the real-time stream in the same process
    (on PostgreSQL: one queue worker, which shares the work with every `candlecast worker`)."""
    from candlecast.runner import run_serve

    settings = settings_from(database_url=database_url, pairs=_pairs(pairs))
    setup_service_logging(settings)
    run_serve(settings, host=host, port=port, scheduler=not (no_worker or no_scheduler))


@app.command()
@friendly
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            min=1,
            max=256,
            help="Sync jobs (backfill, ingest, reconcile, forecast) run at once "
            "[default: 4]; trainings at once follow CANDLECAST_TRAIN_WORKERS. "
            "PostgreSQL only",
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="Queues to take jobs from: sync, train or sync,train [default: both]. "
            "PostgreSQL only"
        ),
    ] = None,
    pairs: ServicePairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Run the jobs and the real-time stream without the HTTP API. On PostgreSQL, start one on
    every host that should share the work: they take tasks from the queue in the database and
    split the stream's shards between them."""
    from candlecast.queue.client import parse_queues
    from candlecast.runner import run_worker

    settings = settings_from(database_url=database_url, pairs=_pairs(pairs))
    setup_service_logging(settings)
    run_worker(settings, queues=parse_queues(queues), concurrency=concurrency)


@db_app.command("upgrade")
@friendly
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply every pending migration."""
    from candlecast.store import db

    settings = settings_from(database_url=database_url)
    engine = db.create_store_engine(settings.database_url)
    try:
        revision = db.upgrade(engine)
    finally:
        engine.dispose()
    out.print(f"database at revision {revision}", highlight=False)


@db_app.command("current")
@friendly
def db_current(database_url: DatabaseOption = None) -> None:
    """Print the database's migration revision."""
    from candlecast.store import db

    settings = settings_from(database_url=database_url)
    engine = db.create_store_engine(settings.database_url)
    try:
        revision = db.current_revision(engine)
    finally:
        engine.dispose()
    out.print(f"{revision or 'empty'} (code head {db.head_revision()})", highlight=False)
