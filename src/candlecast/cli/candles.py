"""Candle commands: backfill, ingest, reconcile, import, export, download and status."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from candlecast.cli.common import (
    DatabaseOption,
    IntervalOption,
    SymbolOption,
    app,
    checked,
    friendly,
    open_services,
    out,
    parse_time,
    progress,
    resolve_pair,
    settings_from,
)
from candlecast.domain import ConfigError, interval_ms, iso_utc, validate_interval, validate_symbol

if TYPE_CHECKING:
    from candlecast import jobs


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
    from candlecast.jobs import DAY_MS

    settings = settings_from(database_url=database_url)
    pair_symbol, pair_interval = resolve_pair(symbol, interval, settings)
    window_days = days if days is not None else settings.backfill_days
    expected = window_days * DAY_MS // interval_ms(pair_interval)
    with open_services(settings) as services, services.exchange() as exchange:
        with progress(f"{name} {pair_symbol} {pair_interval}", expected) as advance:
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
    typer.Option(
        "--days", "-d", min=1, max=3650, help="Window in days [default: CANDLECAST_BACKFILL_DAYS]"
    ),
]


@app.command()
@friendly
def backfill(
    days: DaysOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fill the last N days of closed candles, fetching only what is missing."""
    from candlecast import jobs

    report = _sync_command(
        "backfill",
        jobs.backfill,
        days=days,
        symbol=symbol,
        interval=interval,
        database_url=database_url,
    )
    _print_sync("backfill", report)


@app.command()
@friendly
def ingest(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fetch everything since the last stored candle; repair gaps inside the window."""
    from candlecast import jobs

    report = _sync_command(
        "ingest",
        jobs.ingest,
        days=None,
        symbol=symbol,
        interval=interval,
        database_url=database_url,
    )
    _print_sync("ingest", report)


@app.command()
@friendly
def reconcile(
    days: DaysOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Re-fetch the window, compare with the store, and repair whatever differs or is missing."""
    from candlecast import jobs

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


@app.command("import")
@friendly
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help="Dump .zip/.csv files, CSVs with a header, Parquet exports")
    ],
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Load Binance public-data dumps, candle CSVs or Parquet exports; each file loads whole or
    not at all."""
    from candlecast import jobs

    settings = settings_from(database_url=database_url)
    wanted_symbol = checked("--symbol", validate_symbol, symbol)
    wanted_interval = checked("--interval", validate_interval, interval)
    with open_services(settings) as services:
        for path in paths:
            with progress(f"import {path.name}", None) as advance:
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


@app.command()
@friendly
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
    from candlecast.files import write_csv, write_parquet
    from candlecast.store import candle_reads

    if fmt not in {"csv", "parquet"}:
        raise ConfigError(f"--format must be csv or parquet, not {fmt!r}")
    if fmt == "parquet" and output == "-":
        raise ConfigError("--format parquet needs --output PATH")
    settings = settings_from(database_url=database_url)
    pair_symbol, pair_interval = resolve_pair(symbol, interval, settings)
    first = parse_time("--start", start)
    last = parse_time("--end", end)
    if first is not None and last is not None and first > last:
        raise ConfigError("--start is after --end")
    with open_services(settings) as services, services.engine.connect() as connection:
        rows = candle_reads.iter_rows(
            connection, symbol=pair_symbol, interval=pair_interval, start=first, end=last
        )
        if fmt == "parquet":
            count = write_parquet(rows, Path(output), symbol=pair_symbol, interval=pair_interval)
        elif output == "-":
            count = write_csv(rows, sys.stdout)
        else:
            with open(output, "w", encoding="utf-8", newline="") as handle:
                count = write_csv(rows, handle)
    if output != "-":
        out.print(f"wrote {count} candles to {output}", highlight=False)


@app.command()
@friendly
def download(
    symbols: Annotated[list[str], typer.Argument(help="Symbols, e.g. BTCUSDT ETHUSDT")],
    start: Annotated[str, typer.Option(help="First month (2024-01) or day (2024-01-15)")],
    end: Annotated[
        str | None, typer.Option(help="Last month or day, inclusive [default: yesterday, UTC]")
    ] = None,
    interval: IntervalOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fetch Binance's public kline dumps (CANDLECAST_DUMPS_URL), verify and import them."""
    from candlecast.exchange.dumps_http import DumpClient
    from candlecast.jobs import download as dumps

    settings = settings_from(database_url=database_url)
    pair_interval = validate_interval(interval) if interval else settings.interval
    wanted = [validate_symbol(symbol.upper()) for symbol in symbols]
    first_day = dumps.parse_bound("--start", start, end=False)
    last_day = dumps.parse_bound("--end", end, end=True) if end else dumps.yesterday_utc()
    if first_day > last_day:
        raise ConfigError(f"--start {start} is after --end {end or last_day.isoformat()}")
    with open_services(settings) as services, DumpClient.from_settings(settings) as client:
        for symbol in wanted:
            todo, _ = dumps.pending_files(
                services.engine,
                symbol=symbol,
                interval=pair_interval,
                first_day=first_day,
                last_day=min(last_day, dumps.yesterday_utc()),
            )
            total = dumps.expected_candles(todo, pair_interval)
            with progress(f"download {symbol} {pair_interval}", total) as advance:
                report = dumps.download(
                    services.engine,
                    client,
                    symbol=symbol,
                    interval=pair_interval,
                    first_day=first_day,
                    last_day=last_day,
                    on_progress=advance,
                )
            for first, last in report.missing:
                span = first.isoformat() if first == last else f"{first} .. {last}"
                out.print(
                    f"{symbol} {pair_interval} {span}: not on {settings.dumps_url} (404), skipped",
                    highlight=False,
                )
            written = report.written
            out.print(
                f"download {symbol} {pair_interval} {report.first_day} .. {report.last_day}: "
                f"{len(report.imported)} files, {written.received} candles, "
                f"{written.inserted} inserted, {written.repaired} repaired; "
                f"{report.already} files already imported",
                highlight=False,
            )


@app.command()
@friendly
def status(
    database_url: DatabaseOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show what is stored per symbol and interval: first, last, count and gaps."""
    from candlecast.store import gaps

    settings = settings_from(database_url=database_url)
    with open_services(settings) as services, services.engine.connect() as connection:
        pairs = gaps.summaries(connection)
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
    from candlecast.cli.tables import status_table

    out.print(status_table(pairs), soft_wrap=False)
