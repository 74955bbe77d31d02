"""Alembic environment: candlecast passes its own connection in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from candlecast.store.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `candlecast db upgrade`, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
