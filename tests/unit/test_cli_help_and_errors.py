"""Help without type tags, fitting 80 columns; configuration errors name their setting or flag."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from candlecast.cli import app

NARROW = {"COLUMNS": "80", "TERMINAL_WIDTH": "80"}


def _command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    with root.make_context("candlecast", [], resilient_parsing=True) as ctx:
        for name in root.list_commands(ctx):  # type: ignore[attr-defined]
            paths.append([name])
            sub = root.get_command(ctx, name)  # type: ignore[attr-defined]
            if hasattr(sub, "list_commands"):
                with sub.make_context(name, [], parent=ctx, resilient_parsing=True) as sub_ctx:
                    paths += [[name, child] for child in sub.list_commands(sub_ctx)]
    return paths


PATHS = _command_paths()


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={**NARROW, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_every_command_is_covered() -> None:
    names = {" ".join(path) for path in PATHS}
    assert {"backfill", "status", "train", "evaluate", "db", "db upgrade"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "candlecast")
def test_help_has_no_type_tags_and_fits_80_columns(path: list[str]) -> None:
    code, stdout, stderr = _run(*path, "--help")
    assert code == 0, stderr
    assert "Usage:" in stdout
    option_rows = [line for line in stdout.splitlines() if " --" in line]
    for tag in ("<bool>", "<str>", "<int>", "<float", "<path>"):
        assert not [row for row in option_rows if tag in row], f"{tag} in:\n{stdout}"
    assert "…" not in stdout, stdout
    assert max(len(line) for line in stdout.splitlines()) <= 80, stdout


def test_flags_show_no_value_and_options_name_theirs() -> None:
    _, stdout, _ = _run("status", "--help")
    json_line = next(line for line in stdout.splitlines() if "--json" in line)
    assert json_line.split("--json", 1)[1].split()[0] == "Print"  # no metavar in between
    _, stdout, _ = _run("backfill", "--help")
    assert "DAYS" in stdout and "CANDLECAST_BACKFILL_DAYS" in stdout
    assert "CANDLECAST_SYMBOL" in stdout and "CANDLECAST_INTERVAL" in stdout


def _error(code: int, stderr: str) -> str:
    assert code == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_an_interval_from_the_environment_names_its_setting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    line = _error(*_run("status", "--database-url", url, env={"CANDLECAST_INTERVAL": "7m"})[::2])
    assert "CANDLECAST_INTERVAL" in line and "'7m'" in line


def test_an_interval_from_a_flag_names_the_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    line = _error(*_run("backfill", "--interval", "7m", "--database-url", url)[::2])
    assert line.startswith("error: --interval:") and "'7m'" in line
    line = _error(*_run("export", "--symbol", "b!", "--database-url", url)[::2])
    assert line.startswith("error: --symbol:")


def test_a_bad_number_names_its_setting_and_value(tmp_path: Path) -> None:
    env = {"CANDLECAST_BACKFILL_DAYS": "abc", "CANDLECAST_DATABASE_URL": "sqlite:///x.db"}
    line = _error(*_run("status", env=env)[::2])
    assert "CANDLECAST_BACKFILL_DAYS" in line and "'abc'" in line


def test_a_database_url_error_names_the_flag_or_the_setting(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'c.db'}"
    line = _error(*_run("status", "--database-url", missing)[::2])
    assert line.startswith("error: --database-url:") and "does not exist" in line
    line = _error(*_run("status", env={"CANDLECAST_DATABASE_URL": missing})[::2])
    assert line.startswith("error: CANDLECAST_DATABASE_URL:")
    line = _error(*_run("status", "--database-url", "mysql://h/db")[::2])
    assert line.startswith("error: --database-url:") and "mysql" in line


def test_a_placeholder_token_is_named_but_not_repeated(tmp_path: Path) -> None:
    env = {"CANDLECAST_API_TOKEN": "changeme", "CANDLECAST_DATABASE_URL": "sqlite:///x.db"}
    line = _error(*_run("status", env=env)[::2])
    assert "CANDLECAST_API_TOKEN" in line and "changeme" not in line
