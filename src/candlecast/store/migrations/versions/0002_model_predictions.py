"""Materialized per-model predictions, read by /api/series.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_VALUES = (
    "last_close",
    "open_next",
    "high_next",
    "low_next",
    "close_next",
    "range_next",
    "close_lo",
    "close_hi",
    "prob_up",
    "base_close_next",
    "base_range_next",
    "base_prob_up",
)


def upgrade() -> None:
    op.create_table(
        "model_predictions",
        sa.Column("model_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("open_time", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        *(sa.Column(name, sa.Double, nullable=True) for name in _VALUES),
    )


def downgrade() -> None:
    op.drop_table("model_predictions")
