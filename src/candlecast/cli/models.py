"""Model commands: train, evaluate and forecast, each for one pair or for `--pairs`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from candlecast.cli import ops
from candlecast.cli.common import (
    DatabaseOption,
    IntervalOption,
    SymbolOption,
    app,
    friendly,
    open_services,
    out,
    parse_time,
    settings_from,
    stages,
)
from candlecast.cli.tables import fmt, report_tables, validation_tables
from candlecast.domain import ConfigError, Pair, interval_ms, iso_utc

if TYPE_CHECKING:
    from candlecast.store.registry import ModelRecord
    from candlecast.usecases import TrainResult


@app.command()
@friendly
def train(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    days: Annotated[
        float | None,
        typer.Option(
            "--days",
            "-d",
            min=1,
            max=3650,
            help="Training window in days [default: CANDLECAST_TRAIN_DAYS]",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Train even if nothing new arrived")
    ] = False,
    pairs: ops.PairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Train on the most recent days, register the model, and promote it if not worse; then
    record the next forecast."""
    from candlecast.store import registry

    settings = settings_from(database_url=database_url)
    ops.pairs_flag(pairs)
    on_stage, show_stages_on = ops.stage_sink()
    with open_services(settings) as services:
        operations = ops.operations(services, on_stage=on_stage)
        chosen = ops.job_pairs(pairs, symbol, interval, settings, operations)

        def run(pair: Pair) -> None:
            with stages(ops.label("train", pair, chosen)) as display:
                show_stages_on(display)
                try:
                    result = operations.train(pair, days=days, force=force)
                finally:
                    show_stages_on(None)
            with services.engine.connect() as connection:
                record = registry.get_model(connection, model_id=int(result.model_id or 0))
            _print_train(ops.label("train", pair, chosen), result, record)

        ops.for_each(chosen, run)


def _print_train(name: str, result: TrainResult, record: ModelRecord | None) -> None:
    details = result.details
    if result.skipped:
        out.print(f"{name}: skipped, {details['reason']} (model {result.model_id})")
        return
    verdict = "promoted to champion" if result.promoted else "kept as challenger"
    out.print(
        f"{name}: model {result.model_id} {verdict} ({details['decision']}); "
        f"{details['samples']} samples in {details['train_seconds']:.2f} s",
        highlight=False,
    )
    if record is not None:
        out.print(validation_tables(record.metrics["validation"]), soft_wrap=False)
    if result.refresh is not None and result.refresh.recorded:
        out.print(
            f"  next forecast recorded by model {result.refresh.champion_id}", highlight=False
        )


@app.command()
@friendly
def evaluate(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    start: Annotated[str | None, typer.Option(help="First open_time, ISO 8601 UTC")] = None,
    end: Annotated[str | None, typer.Option(help="Last open_time, ISO 8601 UTC")] = None,
    folds: Annotated[int, typer.Option(min=1, max=100, help="Rolling-origin folds")] = 6,
    train_days: Annotated[
        float, typer.Option("--train-days", min=1, max=3650, help="Training window per fold")
    ] = 60,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Write the report as JSON here (- for stdout); with several pairs, one object "
            "keyed by SYMBOL:INTERVAL",
        ),
    ] = None,
    pairs: ops.PairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Walk-forward evaluation against the baselines, exactly as `train` fits."""
    settings = settings_from(database_url=database_url)
    ops.pairs_flag(pairs)
    first = parse_time("--start", start)
    last = parse_time("--end", end)
    if first is not None and last is not None and first > last:
        raise ConfigError("--start is after --end")
    reports: dict[str, dict[str, Any]] = {}
    to_stdout = json_path is not None and str(json_path) == "-"
    with open_services(settings) as services:
        operations = ops.operations(services)
        chosen = ops.job_pairs(pairs, symbol, interval, settings, operations)

        def run(pair: Pair) -> None:
            with stages(ops.label("evaluate", pair, chosen)) as on_stage:
                report = operations.evaluate(
                    pair,
                    start=first,
                    end=last,
                    folds=folds,
                    train_days=train_days,
                    on_stage=on_stage,
                )
            reports[str(pair)] = report
            if not to_stdout:
                if len(chosen) > 1:
                    out.print(f"evaluate {pair}", highlight=False)
                print_report(report)

        try:
            ops.for_each(chosen, run)
        finally:
            # What did finish is kept, even when another pair failed.
            _write_reports(json_path, reports, several=len(chosen) > 1)


def _write_reports(path: Path | None, reports: dict[str, dict[str, Any]], *, several: bool) -> None:
    if path is None or not reports:
        return
    payload = reports if several else next(iter(reports.values()))
    if str(path) == "-":
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    out.print(f"report written to {path}", highlight=False)


def print_report(report: dict[str, Any]) -> None:
    """A walk-forward report's tables and summary lines."""
    if report.get("reference"):
        out.print(f"cross-asset features from {report['reference']}", highlight=False)
    out.print(report_tables(report), soft_wrap=False)
    ci = report["close_interval"]
    direction = report["direction"]
    low, high = direction["accuracy_ci95"]
    out.print(
        f"close interval {ci['level']:.0%}: coverage {fmt(ci['coverage'])}, "
        f"mean width {fmt(ci['mean_width'], 2)}",
        highlight=False,
    )
    out.print(
        f"direction: n={direction['n']} accuracy {fmt(direction['accuracy'])} "
        f"CI95 [{fmt(low)}, {fmt(high)}] Brier {fmt(direction['brier'])} "
        f"(climatology {fmt(direction['brier_baseline'])}) ECE {fmt(direction['ece'])} "
        f"WDA {fmt(direction['wda'])}",
        highlight=False,
    )
    for name, figures in (report.get("quantiles") or {}).items():
        if not isinstance(figures, dict):
            continue
        cover = ", ".join(f"{float(k):.0%} {fmt(v)}" for k, v in figures["coverage"].items())
        out.print(
            f"{name} quantiles: coverage {cover}; CRPS skill {fmt(figures['crps_skill'])}",
            highlight=False,
        )


@app.command()
@friendly
def forecast(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    pairs: ops.PairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Record the champion's forecast for the candle after the last closed one (and score the
    forecasts whose candles have closed)."""
    from candlecast.jobs.modeling import NoModel
    from candlecast.store import candle_reads, ledger

    settings = settings_from(database_url=database_url)
    ops.pairs_flag(pairs)
    with open_services(settings) as services:
        operations = ops.operations(services)
        chosen = ops.job_pairs(pairs, symbol, interval, settings, operations)

        def run(pair: Pair) -> None:
            name = ops.label("forecast", pair, chosen)
            if not operations.has_champion(pair):
                raise NoModel(f"no {pair.symbol} {pair.interval} model yet; run `candlecast train`")
            refreshed = operations.forecast(pair)
            with services.engine.connect() as connection:
                made = ledger.latest(connection, symbol=pair.symbol, interval=pair.interval)
                newest = candle_reads.last_open_time(
                    connection, symbol=pair.symbol, interval=pair.interval
                )
            if not refreshed.recorded or made is None:
                target = None if newest is None else newest + interval_ms(pair.interval)
                if made is not None and made["target_open_time"] == target:
                    why = "the ledger already holds the forecast for the next candle"
                else:
                    # The layer records no hindsight: the store lags behind the exchange.
                    why = (
                        "no forecast recorded: the candle after the last stored one has already "
                        "closed at the exchange; run `candlecast ingest` first"
                    )
                out.print(f"{name}: {why}", highlight=False)
                return
            out.print(
                f"{name} for {iso_utc(made['target_open_time'])} by model "
                f"{made['model_id']}: open {made['pred_open']} high {made['pred_high']} "
                f"low {made['pred_low']} close {made['pred_close']} "
                f"[{made['close_lo']}, {made['close_hi']}] prob_up {made['prob_up']}",
                highlight=False,
            )

        ops.for_each(chosen, run)
