"""Exchange bans (HTTP 418) kept in the database, so a restarted process honours them too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_bans",
        sa.Column("base_url", sa.String(255), primary_key=True),
        sa.Column("banned_until", sa.BigInteger, nullable=False),
        sa.Column("recorded_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("exchange_bans")
