"""The task queue's own bookkeeping beside procrastinate's tables: which host and process each
queue worker is, and the error a failed job raised (procrastinate keeps neither).

Both tables exist on SQLite too, empty there, so the same tables.py serves both dialects.

Revision ID: 0008_worker_hosts
Revises: 0007_task_queue
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_worker_hosts"
down_revision = "0007_task_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_worker_hosts",
        # procrastinate_workers.id; no foreign key, so that procrastinate may delete its
        # workers as it likes (stale rows are pruned by the store).
        sa.Column("worker_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("queues", sa.String(255), nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "queue_job_errors",
        sa.Column("job_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_job_errors")
    op.drop_table("queue_worker_hosts")
