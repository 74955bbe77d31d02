"""What every command shares: the Typer app, options, settings, errors and progress."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from candlecast.domain import (
    CandlecastError,
    ConfigError,
    InvalidInterval,
    InvalidSymbol,
    parse_iso_utc,
    validate_interval,
    validate_symbol,
)

if TYPE_CHECKING:
    # Typer 0.29 vendors click; these are its classes, needed for the overrides' signatures.
    from typer._click.core import Command, Context, Parameter

    from candlecast.bootstrap import Services
    from candlecast.config import Settings

# Only typer and rich load with the app: every command imports what it needs (pydantic,
# SQLAlchemy, pandas, LightGBM, the web stack) itself, so `--help` and `status` start fast.


class _Group(TyperGroup):
    """Typer's group, without type tags: `--json`, not `--json <bool>`; `--days DAYS`."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        _untag_flags(params)
        return params

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            help_option = command.get_help_option(ctx)
            _untag_flags([*command.params, *([help_option] if help_option else [])])
        return command


def _untag_flags(params: list[Parameter]) -> None:
    # A flag takes no value, so it shows none; an option shows its value's name (DAYS), which
    # says more than its type (<float range>) in less width.
    for param in params:
        if param.metavar is not None or param.param_type_name != "option":
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        long_names = [opt for opt in param.opts if opt.startswith("--")]
        param.metavar = (long_names[0][2:] if long_names else param.name or "").upper()


# Markdown, not Rich markup: "[default: ...]" in a help text stays visible.
app = typer.Typer(
    help="candlecast: an exact, live copy of Binance klines with honest next-candle forecasts.",
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)
db_app = typer.Typer(
    help="Database schema commands.", cls=_Group, no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(db_app, name="db")

# No emoji codes: ":x:" in a message stays as written (and rich's emoji table is not loaded).
err = Console(stderr=True, emoji=False)
# Piped output is not cut at 80 columns unless COLUMNS asks for it.
out = Console(
    soft_wrap=True,
    width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200,
    emoji=False,
)
P = ParamSpec("P")

SymbolOption = Annotated[
    str | None,
    typer.Option("--symbol", "-s", help="Symbol, e.g. BTCUSDT [default: CANDLECAST_SYMBOL]"),
]
IntervalOption = Annotated[
    str | None,
    typer.Option("--interval", "-i", help="Kline interval, e.g. 5m [default: CANDLECAST_INTERVAL]"),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url", metavar="URL", help="SQLAlchemy URL [default: CANDLECAST_DATABASE_URL]"
    ),
]


# Flags whose name is not simply the setting's name with dashes.
_FLAGS: dict[str, str] = {"backfill_days": "--days"}
# Settings whose value an error message must not repeat.
_SECRET_WORDS = ("token", "password", "url")


def origin(field: str, given: dict[str, Any]) -> str:
    """Where a setting came from: its flag when one was given, else its environment variable."""
    if field in given:
        return _FLAGS.get(field, "--" + field.replace("_", "-"))
    return f"CANDLECAST_{field.upper()}"


def _problem(error: Any, given: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:
        return message
    where = origin(field, given)
    # A validator may name the variable itself ("CANDLECAST_PAIRS: ..."): name the flag instead.
    message = message.removeprefix(f"CANDLECAST_{field.upper()}: ")
    if where in message:
        return message
    if not any(word in field for word in _SECRET_WORDS) and "input" in error:
        message = f"{message} (got {error['input']!r})"
    return f"{where}: {message}"


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`, with the flags given; errors name their source."""
    from pydantic import ValidationError

    from candlecast.config import Settings

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(_problem(e, given) for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    except InvalidInterval as exc:
        raise ConfigError(f"{origin('interval', given)}: {exc}") from None
    except InvalidSymbol as exc:
        raise ConfigError(f"{origin('symbol', given)}: {exc}") from None
    _check_database_url(settings.database_url, origin("database_url", given))
    return settings


def _check_database_url(database_url: str, where: str) -> None:
    from candlecast.store.db import normalize_url, sqlite_path

    try:
        path = sqlite_path(normalize_url(database_url))
    except ConfigError as exc:
        message = str(exc)
        if "CANDLECAST_DATABASE_URL" in message:
            raise ConfigError(message.replace("CANDLECAST_DATABASE_URL", where)) from None
        raise ConfigError(f"{where}: {message}") from None
    if path is not None and not path.parent.exists():
        raise ConfigError(
            f"{where}: the folder for the SQLite database does not exist: {path.parent}"
        )


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
def stages(command: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner naming the current stage, with the time spent, when attached to a terminal;
    nothing otherwise. Each finished stage stays on screen with its duration."""
    if not err.is_terminal:
        yield None
        return
    import time

    from rich.status import Status

    current: list[tuple[str, float]] = []

    def finish() -> None:
        if current:
            stage, started = current.pop()
            err.print(f"  {command}: {stage} ({time.monotonic() - started:.1f} s)", highlight=False)

    with Status(f"{command}: starting", console=err) as status:

        def advance(stage: str) -> None:
            finish()
            current.append((stage, time.monotonic()))
            status.update(f"{command}: {stage}")

        try:
            yield advance
        finally:
            finish()


@contextmanager
def open_services(settings: Settings) -> Iterator[Services]:
    from candlecast.bootstrap import bootstrap

    services = bootstrap(settings)
    try:
        yield services
    finally:
        services.close()


def resolve_pair(symbol: str | None, interval: str | None, settings: Settings) -> tuple[str, str]:
    """The pair of the --symbol and --interval flags, or else of the settings."""
    return (
        checked("--symbol", validate_symbol, symbol) or settings.symbol,
        checked("--interval", validate_interval, interval) or settings.interval,
    )


def checked(flag: str, validate: Callable[[str], str], value: str | None) -> str | None:
    """A flag's value through its validator; an error names the flag."""
    if not value:
        return None
    try:
        return validate(value)
    except ConfigError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


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
