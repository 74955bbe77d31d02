"""The `candlecast` command line (Typer). Commands translate flags into job calls, nothing more."""

from candlecast.cli import candles, db, jobs, models, pairs, service, status
from candlecast.cli.common import app

__all__ = ["app", "candles", "db", "jobs", "models", "pairs", "service", "status"]
