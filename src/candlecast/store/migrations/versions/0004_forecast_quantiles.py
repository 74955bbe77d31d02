"""The ledger records each forecast's quantiles (JSON by prediction column).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.add_column(sa.Column("quantiles", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("forecasts") as batch:
        batch.drop_column("quantiles")
