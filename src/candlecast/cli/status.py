"""`candlecast status`: what is stored per pair, and which pairs the service follows."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from candlecast.cli.common import DatabaseOption, app, friendly, open_services, out, settings_from
from candlecast.domain import Pair, iso_utc

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from candlecast.config import Settings
    from candlecast.store import pairs as pair_store


def followed_entries(
    engine: Engine, settings: Settings, *, persist: bool
) -> list[pair_store.FollowedPair]:
    """The followed pairs, after following the configured pairs never seen before, as the
    service does at start (a removed pair stays removed).

    With `persist` False the seeding is rolled back: the answer is exactly what a start would
    make of this database, while the database stays untouched (for `status`)."""
    from candlecast.store import pairs as pair_store
    from candlecast.store.db import write_transaction

    if persist:
        with write_transaction(engine) as connection:
            pair_store.seed(connection, settings.configured_pairs(), added_at=_now_ms())
            return pair_store.followed(connection)
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            pair_store.seed(connection, settings.configured_pairs(), added_at=_now_ms())
            return pair_store.followed(connection)
        finally:
            transaction.rollback()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@app.command()
@friendly
def status(
    database_url: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show every followed pair and every stored one: first, last, count and gaps."""
    from candlecast.store import gaps

    settings = settings_from(database_url=database_url)
    with open_services(settings) as services:
        followed = [
            entry.pair for entry in followed_entries(services.engine, settings, persist=False)
        ]
        with services.engine.connect() as connection:
            stored = gaps.summaries(connection)
    if as_json:
        out.print_json(json.dumps(_entries(stored, followed)))
        return
    if not stored and not followed:
        out.print("no candles stored yet; run `candlecast backfill`")
        return
    from candlecast.cli.tables import status_table

    out.print(status_table(stored, followed=followed), soft_wrap=False)
    if any(Pair(s.symbol, s.interval) not in followed for s in stored):
        out.print(
            "followed no: stored, but the service does not update it; "
            "`candlecast pairs add SYMBOL:INTERVAL` follows it",
            highlight=False,
        )
    if not stored:
        out.print("no candles stored yet; run `candlecast backfill`")


def _entries(stored: list[Any], followed: list[Pair]) -> list[dict[str, Any]]:
    """Followed pairs first, in their order (with no candles: first/last null, count 0), then
    the stored pairs nobody follows."""
    by_pair = {Pair(s.symbol, s.interval): s for s in stored}
    entries: list[dict[str, Any]] = []
    for pair in [*followed, *(p for p in by_pair if p not in followed)]:
        summary = by_pair.get(pair)
        entries.append(
            {
                "symbol": pair.symbol,
                "interval": pair.interval,
                "followed": pair in followed,
                "first": None if summary is None else iso_utc(summary.first_open_time),
                "last": None if summary is None else iso_utc(summary.last_open_time),
                "count": 0 if summary is None else summary.count,
                "gaps": 0 if summary is None else summary.gaps,
                "missing": 0 if summary is None else summary.missing,
            }
        )
    return entries
