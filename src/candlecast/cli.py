"""The `candlecast` command line (Typer). Commands translate flags into job calls, nothing more."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from candlecast import jobs
from candlecast.bootstrap import Services, bootstrap
from candlecast.config import Settings
from candlecast.domain import (
    CandlecastError,
    ConfigError,
    interval_ms,
    iso_utc,
    parse_iso_utc,
    validate_interval,
    validate_symbol,
)
from candlecast.files import write_csv, write_parquet
from candlecast.jobs import modeling
from candlecast.store import candles as candle_store
from candlecast.store import db, registry

app = typer.Typer(
    help="candlecast: an exact, live copy of Binance klines with honest next-candle forecasts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

err = Console(stderr=True)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
T = TypeVar("T")

SymbolOption = Annotated[
    str | None, typer.Option("--symbol", "-s", help="Symbol, e.g. BTCUSDT [default: setting]")
]
IntervalOption = Annotated[
    str | None, typer.Option("--interval", "-i", help="Kline interval, e.g. 5m [default: setting]")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL [default: CANDLECAST_DATABASE_URL]"),
]


def _settings(**overrides: Any) -> Settings:
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def _run(action: Callable[[], T]) -> T:
    """Runs a command body; candlecast's errors become one clear line and exit status 1."""
    try:
        return action()
    except CandlecastError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        err.print(f"[bold red]error:[/] database: {detail}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar when attached to a terminal; nothing otherwise."""
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda advanced: progress.advance(task, advanced)


@contextmanager
def _services(settings: Settings) -> Iterator[Services]:
    services = bootstrap(settings)
    try:
        yield services
    finally:
        services.close()


def _pair(symbol: str | None, interval: str | None, settings: Settings) -> tuple[str, str]:
    return (
        validate_symbol(symbol) if symbol else settings.symbol,
        validate_interval(interval) if interval else settings.interval,
    )


def _print_sync(name: str, report: jobs.SyncReport, *, extra: dict[str, Any] | None = None) -> None:
    details = report.details()
    line = (
        f"{name}: {details['fetched']} fetched, {details['inserted']} inserted, "
        f"{details['repaired']} repaired in {details['calls']} calls "
        f"({details['window_first']} .. {details['window_last']})"
    )
    out.print(line, highlight=False)
    for key, value in (extra or {}).items():
        out.print(f"  {key}: {value}", highlight=False)
    for gap in details["unfillable_gaps"]:
        out.print(
            f"  gap the exchange cannot fill: {gap['first']} .. {gap['last']} "
            f"({gap['missing']} candles)",
            highlight=False,
        )


def _sync_command(
    name: str,
    job: Callable[..., jobs.SyncReport],
    *,
    days: int | None,
    symbol: str | None,
    interval: str | None,
    database_url: str | None,
) -> jobs.SyncReport:
    settings = _settings(database_url=database_url)
    pair_symbol, pair_interval = _pair(symbol, interval, settings)
    window_days = days if days is not None else settings.backfill_days
    expected = window_days * jobs.DAY_MS // interval_ms(pair_interval)
    with _services(settings) as services, services.exchange() as exchange:
        with _progress(f"{name} {pair_symbol} {pair_interval}", expected) as advance:
            return job(
                services.engine,
                exchange,
                symbol=pair_symbol,
                interval=pair_interval,
                days=window_days,
                on_progress=advance,
            )


DaysOption = Annotated[
    int | None,
    typer.Option("--days", "-d", min=1, max=3650, help="Window in days [default: BACKFILL_DAYS]"),
]


@app.command()
def backfill(
    days: DaysOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fill the last N days of closed candles, fetching only what is missing."""

    def body() -> None:
        report = _sync_command(
            "backfill",
            jobs.backfill,
            days=days,
            symbol=symbol,
            interval=interval,
            database_url=database_url,
        )
        _print_sync("backfill", report)

    _run(body)


@app.command()
def ingest(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fetch everything since the last stored candle; repair gaps inside the window."""

    def body() -> None:
        report = _sync_command(
            "ingest",
            jobs.ingest,
            days=None,
            symbol=symbol,
            interval=interval,
            database_url=database_url,
        )
        _print_sync("ingest", report)

    _run(body)


@app.command()
def reconcile(
    days: DaysOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Re-fetch the window, compare with the store, and repair whatever differs or is missing."""

    def body() -> None:
        report = _sync_command(
            "reconcile",
            jobs.reconcile,
            days=days,
            symbol=symbol,
            interval=interval,
            database_url=database_url,
        )
        _print_sync(
            "reconcile",
            report,
            extra={
                "checked": report.fetched,
                "repaired": report.written.repaired,
                "missing and filled": report.written.inserted,
                "unfillable gaps": len(report.unfillable),
            },
        )

    _run(body)


@app.command("import")
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Dump .zip/.csv files or CSVs with a header")],
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Load Binance public-data dumps or candle CSVs; each file loads whole or not at all."""

    def body() -> None:
        settings = _settings(database_url=database_url)
        wanted_symbol = validate_symbol(symbol) if symbol else None
        wanted_interval = validate_interval(interval) if interval else None
        with _services(settings) as services:
            for path in paths:
                with _progress(f"import {path.name}", None) as advance:
                    report = jobs.import_file(
                        services.engine,
                        path=path,
                        symbol=wanted_symbol,
                        interval=wanted_interval,
                        fallback=(settings.symbol, settings.interval),
                        on_progress=advance,
                    )
                written = report.written
                out.print(
                    f"{path}: {report.symbol} {report.interval}: {written.received} rows, "
                    f"{written.inserted} inserted, {written.repaired} repaired, "
                    f"{written.enriched} enriched, {written.unchanged} unchanged",
                    highlight=False,
                )

    _run(body)


@app.command()
def export(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    start: Annotated[str | None, typer.Option(help="First open_time, ISO 8601 UTC")] = None,
    end: Annotated[str | None, typer.Option(help="Last open_time, ISO 8601 UTC")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet")] = "csv",
    output: Annotated[str, typer.Option("--output", "-o", help="File path, or - for stdout")] = "-",
    database_url: DatabaseOption = None,
) -> None:
    """Write stored candles in ascending open_time, exactly as the exchange gave them."""

    def body() -> None:
        if fmt not in {"csv", "parquet"}:
            raise ConfigError(f"--format must be csv or parquet, not {fmt!r}")
        if fmt == "parquet" and output == "-":
            raise ConfigError("--format parquet needs --output PATH")
        settings = _settings(database_url=database_url)
        pair_symbol, pair_interval = _pair(symbol, interval, settings)
        first = _parse_time("--start", start)
        last = _parse_time("--end", end)
        if first is not None and last is not None and first > last:
            raise ConfigError("--start is after --end")
        with _services(settings) as services, services.engine.connect() as connection:
            rows = candle_store.iter_rows(
                connection, symbol=pair_symbol, interval=pair_interval, start=first, end=last
            )
            if fmt == "parquet":
                count = write_parquet(rows, Path(output))
            elif output == "-":
                count = write_csv(rows, sys.stdout)
            else:
                with open(output, "w", encoding="utf-8", newline="") as handle:
                    count = write_csv(rows, handle)
        if output != "-":
            out.print(f"wrote {count} candles to {output}", highlight=False)

    _run(body)


def _parse_time(flag: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso_utc(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


@app.command()
def status(
    database_url: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show what is stored per symbol and interval: first, last, count and gaps."""

    def body() -> None:
        settings = _settings(database_url=database_url)
        with _services(settings) as services, services.engine.connect() as connection:
            pairs = candle_store.summaries(connection)
        if as_json:
            payload = [
                {
                    "symbol": p.symbol,
                    "interval": p.interval,
                    "first": iso_utc(p.first_open_time),
                    "last": iso_utc(p.last_open_time),
                    "count": p.count,
                    "gaps": p.gaps,
                    "missing": p.missing,
                }
                for p in pairs
            ]
            out.print_json(json.dumps(payload))
            return
        if not pairs:
            out.print("no candles stored yet; run `candlecast backfill`")
            return
        table = Table("symbol", "interval", "first (UTC)", "last (UTC)", "count", "gaps", "missing")
        for p in pairs:
            table.add_row(
                p.symbol,
                p.interval,
                iso_utc(p.first_open_time),
                iso_utc(p.last_open_time),
                str(p.count),
                str(p.gaps),
                str(p.missing),
            )
        out.print(table)

    _run(body)


@app.command()
def train(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    days: Annotated[
        float | None, typer.Option("--days", "-d", min=1, max=3650, help="Training window [90]")
    ] = None,
    force: Annotated[bool, typer.Option(help="Train even if nothing new arrived")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Train on the most recent days, register the model, and promote it if not worse."""

    def body() -> None:
        settings = _settings(database_url=database_url)
        pair_symbol, pair_interval = _pair(symbol, interval, settings)
        with _services(settings) as services:
            outcome = modeling.train_model(
                services.engine,
                symbol=pair_symbol,
                interval=pair_interval,
                days=days if days is not None else settings.train_days,
                force=force,
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
            out.print(_validation_table(record.metrics["validation"]))

    _run(body)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _validation_table(validation: dict[str, Any]) -> Table:
    table = Table("target", "MAE", "baseline MAE", "skill", title="validation (held-out tail)")
    for name, figures in validation.items():
        if name == "direction":
            continue
        table.add_row(
            name,
            _fmt(figures.get("mae")),
            _fmt(figures.get("baseline_mae")),
            _fmt(figures.get("skill")),
        )
    direction = validation.get("direction")
    if direction:
        table.add_row(
            "direction (Brier)",
            _fmt(direction.get("brier")),
            _fmt(direction.get("brier_baseline")),
            "-",
        )
    return table


def _report_table(report: dict[str, Any]) -> Table:
    table = Table(
        "target", "MAE", "RMSE", "sMAPE %", "baseline", "baseline MAE", "skill",
        title=f"walk-forward: {report['folds']} folds, {report['rows']} rows, "
        f"train {report['train_days']} d",
    )  # fmt: skip
    for name, figures in report["targets"].items():
        table.add_row(
            name,
            _fmt(figures["mae"]),
            _fmt(figures["rmse"]),
            _fmt(figures["smape"]),
            str(figures["baseline"]),
            _fmt(figures["baseline_mae"]),
            _fmt(figures["skill"]),
        )
    return table


@app.command()
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

    def body() -> None:
        settings = _settings(database_url=database_url)
        pair_symbol, pair_interval = _pair(symbol, interval, settings)
        first = _parse_time("--start", start)
        last = _parse_time("--end", end)
        if first is not None and last is not None and first > last:
            raise ConfigError("--start is after --end")
        with _services(settings) as services:
            report = modeling.evaluate(
                services.engine,
                symbol=pair_symbol,
                interval=pair_interval,
                start=first,
                end=last,
                folds=folds,
                train_days=train_days,
            )
        if json_path is not None and str(json_path) == "-":
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
            return
        out.print(_report_table(report))
        ci = report["close_interval"]
        direction = report["direction"]
        out.print(
            f"close interval {ci['level']:.0%}: coverage {_fmt(ci['coverage'])}, "
            f"mean width {_fmt(ci['mean_width'], 2)}",
            highlight=False,
        )
        out.print(
            f"direction: n={direction['n']} accuracy {_fmt(direction['accuracy'])} "
            f"CI95 {direction['accuracy_ci95']} Brier {_fmt(direction['brier'])} "
            f"(climatology {_fmt(direction['brier_baseline'])}) ECE {_fmt(direction['ece'])} "
            f"WDA {_fmt(direction['wda'])}",
            highlight=False,
        )
        if json_path is not None:
            json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            out.print(f"report written to {json_path}", highlight=False)

    _run(body)


@app.command()
def forecast(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Record the champion's forecast for the candle after the last closed one."""

    def body() -> None:
        settings = _settings(database_url=database_url)
        pair_symbol, pair_interval = _pair(symbol, interval, settings)
        with _services(settings) as services:
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

    _run(body)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 8000,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Serve the API only; run jobs elsewhere")
    ] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Run the API, the dashboard, the scheduler and the real-time stream in one process."""
    from candlecast.service import run_serve

    def body() -> None:
        settings = _settings(database_url=database_url)
        _service_logging()
        run_serve(settings, host=host, port=port, scheduler=not no_scheduler)

    _run(body)


@app.command()
def worker(database_url: DatabaseOption = None) -> None:
    """Run the scheduler and the real-time stream without the HTTP API."""
    from candlecast.service import run_worker

    def body() -> None:
        settings = _settings(database_url=database_url)
        _service_logging()
        run_worker(settings)

    _run(body)


def _service_logging() -> None:
    # A service is watched through its log: candlecast's own INFO lines matter there.
    logging.getLogger("candlecast").setLevel(logging.INFO)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None) -> None:
    """Apply every pending migration."""

    def body() -> None:
        settings = _settings(database_url=database_url)
        engine = db.create_store_engine(settings.database_url)
        try:
            revision = db.upgrade(engine)
        finally:
            engine.dispose()
        out.print(f"database at revision {revision}", highlight=False)

    _run(body)


@db_app.command("current")
def db_current(database_url: DatabaseOption = None) -> None:
    """Print the database's migration revision."""

    def body() -> None:
        settings = _settings(database_url=database_url)
        engine = db.create_store_engine(settings.database_url)
        try:
            revision = db.current_revision(engine)
        finally:
            engine.dispose()
        out.print(f"{revision or 'empty'} (code head {db.head_revision()})", highlight=False)

    _run(body)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level")] = False,
) -> None:
    """Configure logging for every command."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


if __name__ == "__main__":
    app()
