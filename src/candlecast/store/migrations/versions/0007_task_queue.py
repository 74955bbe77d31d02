"""The distributed task queue's tables (procrastinate), on PostgreSQL only.

procrastinate ships its schema as SQL; it is applied here so that `candlecast db upgrade` does
everything. A later procrastinate release that changes its schema gets its own revision here,
applying that release's migration files in order. SQLite runs in one process and needs no queue.

Revision ID: 0007_task_queue
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007_task_queue"
down_revision = "0006"
branch_labels = None
depends_on = None

QUEUE_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    # Straight to the driver: the schema is many statements, with `%` that must stay as is.
    bind.connection.dbapi_connection.cursor().execute(SchemaManager.get_schema())  # type: ignore[union-attr]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in QUEUE_TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute(
        "DO $$ DECLARE f record; BEGIN "
        "FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%' "
        "LOOP EXECUTE 'DROP FUNCTION IF EXISTS ' || f.sig || ' CASCADE'; END LOOP; END $$"
    )
    for kind in (
        "procrastinate_job_to_defer_v1",
        "procrastinate_job_status",
        "procrastinate_job_event_type",
    ):
        op.execute(f"DROP TYPE IF EXISTS {kind} CASCADE")
