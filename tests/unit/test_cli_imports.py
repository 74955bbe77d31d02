"""The command line loads heavy libraries only in the commands that need them.

Each check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "pandas",
    "numpy",
    "lightgbm",
    "sklearn",
    "scipy",
    "fastapi",
    "uvicorn",
    "starlette",
    "jinja2",
    "plotly",
    "httpx",
    "websockets",
)

_HELP_SCRIPT = """
import json, sys
import typer.main
import candlecast.cli

command = typer.main.get_command(candlecast.cli.app)


def render(cmd, name, parent):
    with cmd.make_context(name, [], parent=parent, resilient_parsing=True) as ctx:
        cmd.get_help(ctx)
        if hasattr(cmd, "list_commands"):
            for sub in cmd.list_commands(ctx):
                render(cmd.get_command(ctx, sub), sub, ctx)


render(command, "candlecast", None)
print(json.dumps(sorted(sys.modules)))
"""

_RUN_SCRIPT = """
import json, sys
from candlecast.cli import app

try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)))
"""


def _loaded(script: str, *args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted(name for name in names if name in modules)


def test_importing_the_cli_and_building_every_help_loads_no_heavy_library() -> None:
    modules = _loaded(_HELP_SCRIPT)
    assert "candlecast.cli.models" in modules  # the help really covered the commands
    assert _heavy(modules, (*HEAVY, "sqlalchemy", "alembic", "pydantic_settings")) == []


def test_status_loads_no_heavy_library_and_no_alembic_once_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'candlecast.db'}"
    first = _loaded(_RUN_SCRIPT, "status", "--database-url", url)
    assert "alembic" in first  # the empty database was migrated
    again = _loaded(_RUN_SCRIPT, "status", "--database-url", url)
    assert _heavy(again, (*HEAVY, "alembic")) == []
    assert "sqlalchemy" in again  # it did read the database
