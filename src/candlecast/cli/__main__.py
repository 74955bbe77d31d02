"""`python -m candlecast.cli` runs the command line."""

from candlecast.cli import app

app()
