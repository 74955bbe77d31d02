"""Forecasts 3 and 12 candles ahead: the close's quantiles and the range over the horizon,
recorded once before their first candle closes and scored when all of them are stored.

Revision ID: 0009_horizon_forecasts
Revises: 0008_worker_hosts
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from candlecast.store.tables import ExactDecimal

revision = "0009_horizon_forecasts"
down_revision = "0008_worker_hosts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "horizon_forecasts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("origin_open_time", sa.BigInteger, nullable=False),
        sa.Column("end_open_time", sa.BigInteger, nullable=False),
        sa.Column("made_at", sa.BigInteger, nullable=False),
        sa.Column("made_at_exchange", sa.BigInteger, nullable=True),
        sa.Column("last_close", sa.Double, nullable=False),
        sa.Column("close_quantiles", sa.JSON, nullable=False),
        sa.Column("range", sa.Double, nullable=False),
        sa.Column("range_quantiles", sa.JSON, nullable=False),
        sa.Column("persistence_range", sa.Double, nullable=True),
        sa.Column("random_walk_range", sa.Double, nullable=True),
        sa.Column("har_range", sa.Double, nullable=True),
        sa.Column("real_close", ExactDecimal, nullable=True),
        sa.Column("real_range", ExactDecimal, nullable=True),
        sa.Column("scored_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint(
            "symbol",
            "interval",
            "horizon",
            "origin_open_time",
            name="uq_horizon_forecasts_origin",
        ),
    )
    op.create_index(
        "ix_horizon_forecasts_pair_end",
        "horizon_forecasts",
        ["symbol", "interval", "end_open_time"],
    )


def downgrade() -> None:
    op.drop_index("ix_horizon_forecasts_pair_end", table_name="horizon_forecasts")
    op.drop_table("horizon_forecasts")
