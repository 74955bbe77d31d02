"""Typer commands (placeholder until the CLI lands in this session)."""

import typer

app = typer.Typer()
