"""`candlecast pairs list | add | remove`: the followed pairs, changed while the service runs.

The list lives in the database; a running service reads it every few seconds (service.py's
PAIRS_POLL_SECONDS) and starts or stops a pair's stream and jobs with no restart. Adding goes
through PairOperations.follow, which checks the exchange lists the pair.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from candlecast.cli.common import (
    DatabaseOption,
    _Group,
    app,
    err,
    friendly,
    open_services,
    out,
    settings_from,
)
from candlecast.domain import (
    ConfigError,
    Pair,
    PairAlreadyFollowed,
    UnknownPair,
    iso_utc,
)

if TYPE_CHECKING:
    from candlecast.bootstrap import Services
    from candlecast.usecases import PairOperations

pairs_app = typer.Typer(
    help="The followed pairs: list, add and remove them, also while the service runs.",
    cls=_Group,
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(pairs_app, name="pairs")

# How soon a running service notices a change: it reads the pairs table this often.
NOTICE = "a running service picks this up within about 5 s, with no restart"

PairsArgument = Annotated[
    list[str], typer.Argument(help="Pairs as SYMBOL:INTERVAL, e.g. ETHUSDT:5m", show_default=False)
]


def parse_arguments(values: list[str]) -> list[Pair]:
    """SYMBOL:INTERVAL arguments to distinct pairs, in order; an error names the bad one."""
    found: list[Pair] = []
    for value in values:
        try:
            pair = Pair.parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{value}: {exc}") from None
        if pair not in found:
            found.append(pair)
    return found


@pairs_app.command("list")
@friendly
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Show the followed pairs in order (the first is the dashboard's default): when each was
    added, whether its first backfill finished, its newest candle and its champion model."""
    from candlecast.cli.status import followed_entries
    from candlecast.store import candle_reads, registry

    settings = settings_from(database_url=database_url)
    with open_services(settings) as services:
        entries = followed_entries(services.engine, settings, persist=True)
        with services.engine.connect() as connection:
            rows = [
                {
                    "symbol": entry.symbol,
                    "interval": entry.interval,
                    "added_at": iso_utc(entry.added_at),
                    "backfilled": entry.backfilled_at is not None,
                    "backfilled_at": _iso(entry.backfilled_at),
                    "last_candle_time": _iso(
                        candle_reads.last_open_time(
                            connection, symbol=entry.symbol, interval=entry.interval
                        )
                    ),
                    "champion_id": registry.champion_id(
                        connection, symbol=entry.symbol, interval=entry.interval
                    ),
                }
                for entry in entries
            ]
    if as_json:
        out.print_json(json.dumps({"pairs": rows}))
        return
    if not rows:
        out.print("no pair is followed; add one with `candlecast pairs add SYMBOL:INTERVAL`")
        return
    from candlecast.cli.tables import pairs_table

    out.print(pairs_table(rows), soft_wrap=False)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(ms)


@pairs_app.command("add")
@friendly
def add(pairs: PairsArgument, database_url: DatabaseOption = None) -> None:
    """Follow pairs after checking that the exchange lists each one; all are added or none.
    The service then backfills, trains and forecasts them."""
    wanted = parse_arguments(pairs)
    settings = settings_from(database_url=database_url)
    with open_services(settings) as services:
        operations = _operations(services)
        operations.seed_pairs()
        _check_all(operations, wanted)
        for pair in wanted:
            entry = operations.follow(pair, check_exchange=False)
            out.print(f"now following {pair} (added {iso_utc(entry.added_at)})", highlight=False)
    listed = ",".join(map(str, wanted))
    out.print(
        f"{NOTICE}: it backfills {settings.backfill_days} days, trains and forecasts; "
        f"without a service, run `candlecast backfill --pairs {listed}`",
        highlight=False,
    )


def _check_all(operations: PairOperations, wanted: list[Pair]) -> None:
    """Every pair is new and listed by the exchange, or nothing is added: one error names
    each pair that is not."""
    followed = [pair for pair in wanted if operations.is_followed(pair)]
    if followed:
        raise PairAlreadyFollowed(
            f"already followed: {', '.join(map(str, followed))}; nothing added"
        )
    problems: list[str] = []
    for pair in wanted:
        try:
            # The check follow() makes, for every pair before any is added.
            operations.check_listed(pair)
        except UnknownPair as exc:
            problems.append(str(exc))
    if problems:
        raise UnknownPair("; ".join(problems) + "; nothing added")


@pairs_app.command("remove")
@friendly
def remove(
    pair: Annotated[str, typer.Argument(help="The pair, SYMBOL:INTERVAL", show_default=False)],
    purge: Annotated[
        bool,
        typer.Option(
            "--purge", help="Also delete its candles, models, forecasts, gaps and job runs"
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Purge without asking")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Stop following a pair: its stream and jobs stop. Its data stays unless --purge."""
    (chosen,) = parse_arguments([pair])
    settings = settings_from(database_url=database_url)
    with open_services(settings) as services:
        operations = _operations(services)
        operations.seed_pairs()
        operations.require_followed(chosen)
        if purge and not yes and not _confirmed(chosen):
            err.print(f"nothing deleted; {chosen} is still followed", highlight=False)
            raise typer.Exit(1)
        counts = operations.unfollow(chosen, purge=purge)
    out.print(f"stopped following {chosen}; {NOTICE}", highlight=False)
    if purge:
        deleted = ", ".join(f"{count} {name}" for name, count in counts.items())
        out.print(f"deleted: {deleted}", highlight=False)
    else:
        out.print(
            "its data stays (`candlecast pairs add` resumes it; removing with --purge deletes it)",
            highlight=False,
        )


def _confirmed(pair: Pair) -> bool:
    try:
        return typer.confirm(
            f"Delete every candle, model, forecast, gap and job run of {pair}?", default=False
        )
    except typer.Abort:
        # No answer (end of input): nothing is deleted.
        return False


def _operations(services: Services) -> PairOperations:
    from candlecast.cli.ops import operations

    return operations(services)
