"""What every command shares: the Typer app, options, settings, errors and progress."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape

from candlecast.domain import (
    CandlecastError,
    ConfigError,
    parse_iso_utc,
    validate_interval,
    validate_symbol,
)

if TYPE_CHECKING:
    from candlecast.bootstrap import Services
    from candlecast.config import Settings

# Only typer and rich load with the app: every command imports what it needs (pydantic,
# SQLAlchemy, pandas, LightGBM, the web stack) itself, so `--help` and `status` start fast.
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
P = ParamSpec("P")

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


def settings_from(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from candlecast.config import Settings

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None


def friendly(command: Callable[P, None]) -> Callable[P, None]:
    """Makes a command's failures one clear line on stderr and a non-zero exit status."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except CandlecastError as exc:
            # Escaped and emoji-free: a message may quote file content such as "root:x:0:0".
            err.print(
                f"[bold red]error:[/] {escape(str(exc))}",
                highlight=False,
                soft_wrap=True,
                emoji=False,
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as exc:
            if not _is_database_error(exc):
                raise
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            err.print(f"[bold red]error:[/] database: {detail}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _is_database_error(exc: BaseException) -> bool:
    # A command that never loaded SQLAlchemy cannot have raised one of its errors.
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.SQLAlchemyError)


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar when attached to a terminal; nothing otherwise."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
def open_services(settings: Settings) -> Iterator[Services]:
    from candlecast.bootstrap import bootstrap

    services = bootstrap(settings)
    try:
        yield services
    finally:
        services.close()


def resolve_pair(symbol: str | None, interval: str | None, settings: Settings) -> tuple[str, str]:
    return (
        validate_symbol(symbol) if symbol else settings.symbol,
        validate_interval(interval) if interval else settings.interval,
    )


def parse_time(flag: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_iso_utc(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level")] = False,
) -> None:
    """Configure logging for every command."""
    from candlecast.logs import setup_cli_logging

    setup_cli_logging(verbose=verbose)
