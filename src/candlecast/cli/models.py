"""Model commands: train, evaluate and forecast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from candlecast.cli.common import (
    DatabaseOption,
    IntervalOption,
    SymbolOption,
    app,
    friendly,
    open_services,
    out,
    parse_time,
    resolve_pair,
    settings_from,
    stages,
)
from candlecast.cli.tables import fmt, report_tables, validation_tables
from candlecast.domain import ConfigError, iso_utc


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
    database_url: DatabaseOption = None,
) -> None:
    """Train on the most recent days, register the model, and promote it if not worse."""
    from candlecast.jobs import preload

    preload.lightgbm_without_sklearn()
    from candlecast.jobs import modeling
    from candlecast.store import registry

    settings = settings_from(database_url=database_url)
    pair_symbol, pair_interval = resolve_pair(symbol, interval, settings)
    with open_services(settings) as services:
        with stages("train") as on_stage:
            outcome = modeling.train_model(
                services.engine,
                symbol=pair_symbol,
                interval=pair_interval,
                days=days if days is not None else settings.train_days,
                force=force,
                on_stage=on_stage,
            )
        with services.engine.connect() as connection:
            record = registry.get_model(connection, model_id=int(outcome.model_id or 0))
    details = outcome.details
    if outcome.skipped:
        out.print(f"train: skipped, {details['reason']} (model {outcome.model_id})")
        return
    verdict = "promoted to champion" if outcome.promoted else "kept as challenger"
    out.print(
        f"train: model {outcome.model_id} {verdict} ({details['decision']}); "
        f"{details['samples']} samples in {details['train_seconds']:.2f} s",
        highlight=False,
    )
    if record is not None:
        out.print(validation_tables(record.metrics["validation"]), soft_wrap=False)


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
        Path | None, typer.Option("--json", help="Write the report as JSON here (- for stdout)")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Walk-forward evaluation against the baselines, exactly as `train` fits."""
    from candlecast.jobs import preload

    preload.lightgbm_without_sklearn()
    from candlecast.jobs import modeling

    settings = settings_from(database_url=database_url)
    pair_symbol, pair_interval = resolve_pair(symbol, interval, settings)
    first = parse_time("--start", start)
    last = parse_time("--end", end)
    if first is not None and last is not None and first > last:
        raise ConfigError("--start is after --end")
    with open_services(settings) as services:
        with stages("evaluate") as on_stage:
            report = modeling.evaluate(
                services.engine,
                symbol=pair_symbol,
                interval=pair_interval,
                start=first,
                end=last,
                folds=folds,
                train_days=train_days,
                on_stage=on_stage,
            )
    if json_path is not None and str(json_path) == "-":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
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
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        out.print(f"report written to {json_path}", highlight=False)


@app.command()
@friendly
def forecast(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Record the champion's forecast for the candle after the last closed one."""
    from candlecast.jobs import preload

    preload.lightgbm_without_sklearn()
    from candlecast.jobs import modeling

    settings = settings_from(database_url=database_url)
    pair_symbol, pair_interval = resolve_pair(symbol, interval, settings)
    with open_services(settings) as services:
        recorded = modeling.forecast_next(
            services.engine, symbol=pair_symbol, interval=pair_interval
        )
    if recorded is None:
        out.print("forecast: the ledger already holds the forecast for the next candle")
        return
    out.print(
        f"forecast for {iso_utc(recorded['target_open_time'])} by model "
        f"{recorded['model_id']}: open {recorded['pred_open']} high {recorded['pred_high']} "
        f"low {recorded['pred_low']} close {recorded['pred_close']} "
        f"[{recorded['close_lo']}, {recorded['close_hi']}] prob_up {recorded['prob_up']}",
        highlight=False,
    )
