"""The use-case layer as the command line uses it: the pairs a job runs for (`--pairs`), the
operations built over the CLI's services, and training in this process with its stage display.

Commands call PairOperations only, as the scheduler, the stream and the API do: the same locks,
job-run records and refresh (score the ledger, record the next forecast) after every sync.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from candlecast.cli.common import err, resolve_pair
from candlecast.domain import CandlecastError, ConfigError, Pair, parse_pairs

if TYPE_CHECKING:
    from candlecast.bootstrap import Services
    from candlecast.config import Settings
    from candlecast.usecases import PairOperations, PairTrainer

PairsOption = Annotated[
    str | None,
    typer.Option(
        "--pairs",
        "-p",
        help="Run for each of these pairs in turn: SYMBOL:INTERVAL,... (e.g. "
        "BTCUSDT:5m,ETHUSDT:1h), or `all` for every followed pair; instead of --symbol/--interval",
    ),
]

ALL = "all"


def pairs_flag(value: str | None) -> tuple[Pair, ...] | None:
    """The pairs of a `--pairs` list; None when absent or `all` (resolved later, in the
    database). An error names the flag."""
    if value is None or value.strip().lower() == ALL:
        return None
    try:
        return parse_pairs(value)
    except ConfigError as exc:
        raise ConfigError(f"--pairs: {exc}") from None


def job_pairs(
    pairs: str | None,
    symbol: str | None,
    interval: str | None,
    settings: Settings,
    operations: PairOperations,
) -> list[Pair]:
    """The pairs a job runs for: `--pairs`, else the one of --symbol/--interval or the settings."""
    if pairs is None:
        return [Pair(*resolve_pair(symbol, interval, settings))]
    if symbol or interval:
        raise ConfigError("give either --pairs or --symbol/--interval, not both")
    listed = pairs_flag(pairs)
    if listed is not None:
        return list(listed)
    # `all`: what the service follows; on a database no service has started on yet, that is
    # the configured pairs, which the service would follow first.
    operations.seed_pairs()
    followed = operations.followed()
    if not followed:
        raise ConfigError("--pairs all: no pair is followed; add one with `candlecast pairs add`")
    return followed


def for_each(pairs: list[Pair], run: Callable[[Pair], None]) -> None:
    """Runs a job for each pair in turn. One pair runs as ever (its error ends the command);
    with several, a failing pair is reported and the others still run, then the exit is 1."""
    if len(pairs) == 1:
        run(pairs[0])
        return
    failed: list[Pair] = []
    for pair in pairs:
        try:
            run(pair)
        except CandlecastError as exc:
            from rich.markup import escape

            failed.append(pair)
            err.print(f"[bold red]error:[/] {pair}: {escape(str(exc))}", highlight=False)
    if failed:
        err.print(f"failed for {', '.join(map(str, failed))}", highlight=False)
        raise typer.Exit(1)


def label(name: str, pair: Pair, pairs: list[Pair]) -> str:
    """A result line's prefix: the job's name, and the pair when several run."""
    return name if len(pairs) == 1 else f"{name} {pair}"


def in_process_trainer(services: Services, on_stage: Callable[[str], None] | None) -> PairTrainer:
    """Trains in this process (the command waits for it anyway), telling `on_stage` each stage,
    and answers the details the use-case layer reads: model_id, promoted, skipped, reason."""
    from candlecast.jobs import modeling

    def trainer(pair: Pair, *, days: float, force: bool) -> dict[str, Any]:
        outcome = modeling.train_model(
            services.engine,
            symbol=pair.symbol,
            interval=pair.interval,
            days=days,
            force=force,
            on_stage=on_stage,
            reference=services.settings.reference_symbol or None,
        )
        return {
            **outcome.details,
            "model_id": outcome.model_id,
            "promoted": outcome.promoted,
            "skipped": outcome.skipped,
        }

    return trainer


def operations(
    services: Services, *, on_stage: Callable[[str], None] | None = None
) -> PairOperations:
    """The use-case operations over these services, training in this process."""
    from candlecast.jobs import preload

    # The operations import the modelling stack: LightGBM first, without scikit-learn.
    preload.lightgbm_without_sklearn()
    from candlecast.runtime import Runtime
    from candlecast.usecases.build import build_operations

    return build_operations(
        services,
        Runtime(clock=services.clock),
        trainer=in_process_trainer(services, on_stage),
    )


def stage_sink() -> tuple[Callable[[str], None], Callable[[Callable[[str], None] | None], None]]:
    """A stage callback fixed before the operations are built, re-pointed at each command's
    current stage display (which exists only while its `with stages(...)` block runs)."""
    target: list[Callable[[str], None] | None] = [None]

    def on_stage(stage: str) -> None:
        current = target[0]
        if current is not None:
            current(stage)

    def point(callback: Callable[[str], None] | None) -> None:
        target[0] = callback

    return on_stage, point
