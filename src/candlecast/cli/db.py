"""Database role commands: the read-only role for browsing the tables (Adminer, psql)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from candlecast.cli.common import DatabaseOption, db_app, friendly, out, settings_from
from candlecast.domain import ConfigError

if TYPE_CHECKING:
    from pydantic import SecretStr

PASSWORD_ENV = "CANDLECAST_READONLY_PASSWORD"


@db_app.command("create-readonly-role")
@friendly
def create_readonly_role(
    name: Annotated[
        str | None,
        typer.Argument(help="Role name [default: CANDLECAST_READONLY_USER]", show_default=False),
    ] = None,
    password_env: Annotated[
        str,
        typer.Option(
            "--password-env",
            metavar="VAR",
            help="Environment variable holding the role's password (never a flag: it would "
            "show in the process list and the shell history)",
        ),
    ] = PASSWORD_ENV,
    database_url: DatabaseOption = None,
) -> None:
    """Create or update a PostgreSQL role that can log in and only read candlecast's tables."""
    from candlecast.store import db, roles

    settings = settings_from(database_url=database_url)
    role = name or settings.readonly_user
    if not role:
        raise ConfigError("give the role's NAME, or set CANDLECAST_READONLY_USER")
    roles.validate_role_name(role)
    engine = db.create_store_engine(settings.database_url)
    try:
        roles.require_postgresql(engine)
        password = _password(password_env, settings.readonly_password)
        made = roles.create_readonly_role(engine, name=role, password=password)
    finally:
        engine.dispose()
    verb = "created" if made.created else "updated"
    out.print(
        f"read-only role {made.name} {verb}: SELECT on the {made.tables} tables of schema "
        f"{made.schema} and on those later created by {', '.join(made.owners)}; no writes",
        highlight=False,
    )
    for note in made.notes:
        out.print(f"note: {note}", highlight=False)


def _password(variable: str, from_settings: SecretStr | None) -> str:
    # The default variable also reads `.env`, through Settings; any other is read as given.
    secret = from_settings.get_secret_value() if from_settings is not None else ""
    if variable == PASSWORD_ENV and secret:
        return secret
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(f"set {variable} to the read-only role's password")
    return value
