"""The followed pairs, kept in the database so that they change while the service runs.

Revision ID: 0006
Revises: 0005_ledger_unique
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005_ledger_unique"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pairs",
        sa.Column("symbol", sa.String(20), primary_key=True),
        sa.Column("interval", sa.String(4), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("added_at", sa.BigInteger, nullable=False),
        sa.Column("removed_at", sa.BigInteger, nullable=True),
        sa.Column("backfilled_at", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("pairs")
