"""Candle commands: backfill, ingest, reconcile, import, export and download."""

from __future__ import annotations

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
    checked,
    friendly,
    open_services,
    out,
    parse_time,
    progress,
    resolve_pair,
    settings_from,
)
from candlecast.domain import ConfigError, Pair, interval_ms, validate_interval, validate_symbol

if TYPE_CHECKING:
    from candlecast.usecases import RefreshResult, SyncResult


def _print_sync(name: str, result: SyncResult, *, extra: dict[str, Any] | None = None) -> None:
    details = result.report.details()
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
    _print_refresh(result.refresh)


def _print_refresh(refresh: RefreshResult) -> None:
    # The sync's refresh: what the ledger gained (silent when nothing did).
    parts = []
    if refresh.scored:
        parts.append(f"{refresh.scored} forecast(s) scored")
    if refresh.recorded:
        parts.append(f"next forecast recorded by model {refresh.champion_id}")
    if parts:
        out.print(f"  ledger: {', '.join(parts)}", highlight=False)


def _sync_command(
    name: str,
    *,
    days: int | None,
    pairs: str | None,
    symbol: str | None,
    interval: str | None,
    database_url: str | None,
) -> None:
    from candlecast.jobs import DAY_MS

    # --days is the window of this run: the operations read it as the backfill window.
    settings = settings_from(database_url=database_url, backfill_days=days)
    ops.pairs_flag(pairs)
    with open_services(settings) as services:
        operations = ops.operations(services)
        chosen = ops.job_pairs(pairs, symbol, interval, settings, operations)

        def run(pair: Pair) -> None:
            expected = settings.backfill_days * DAY_MS // interval_ms(pair.interval)
            with progress(f"{name} {pair.symbol} {pair.interval}", expected) as advance:
                if name == "backfill":
                    result = operations.backfill(pair, on_progress=advance)
                elif name == "ingest":
                    result = operations.ingest(pair, on_progress=advance)
                else:
                    result = operations.reconcile(pair, on_progress=advance)
            _print_sync(ops.label(name, pair, chosen), result, extra=_extra(name, result))

        ops.for_each(chosen, run)


def _extra(name: str, result: SyncResult) -> dict[str, Any] | None:
    if name != "reconcile":
        return None
    report = result.report
    return {
        "checked": report.fetched,
        "repaired": report.written.repaired,
        "missing and filled": report.written.inserted,
        "unfillable gaps": len(report.unfillable),
    }


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
    pairs: ops.PairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fill the last N days of closed candles, fetching only what is missing; then score the
    ledger and record the next forecast."""
    _sync_command(
        "backfill",
        days=days,
        pairs=pairs,
        symbol=symbol,
        interval=interval,
        database_url=database_url,
    )


@app.command()
@friendly
def ingest(
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    pairs: ops.PairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Fetch everything since the last stored candle; repair gaps inside the window."""
    _sync_command(
        "ingest",
        days=None,
        pairs=pairs,
        symbol=symbol,
        interval=interval,
        database_url=database_url,
    )


@app.command()
@friendly
def reconcile(
    days: DaysOption = None,
    symbol: SymbolOption = None,
    interval: IntervalOption = None,
    pairs: ops.PairsOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Re-fetch the window, compare with the store, and repair whatever differs or is missing."""
    _sync_command(
        "reconcile",
        days=days,
        pairs=pairs,
        symbol=symbol,
        interval=interval,
        database_url=database_url,
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
    # Not through PairOperations.import_file yet: it takes a whole pair, and --symbol or
    # --interval alone must still override just that part of the file's name.
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
