"""Initial schema: candles, known gaps, job runs, model registry and prediction ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from candlecast.store.tables import ExactDecimal

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "candles",
        sa.Column("symbol", sa.String(20), primary_key=True),
        sa.Column("interval", sa.String(4), primary_key=True),
        sa.Column("open_time", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("open", ExactDecimal, nullable=False),
        sa.Column("high", ExactDecimal, nullable=False),
        sa.Column("low", ExactDecimal, nullable=False),
        sa.Column("close", ExactDecimal, nullable=False),
        sa.Column("volume", ExactDecimal, nullable=False),
        sa.Column("close_time", sa.BigInteger, nullable=False),
        sa.Column("quote_volume", ExactDecimal, nullable=True),
        sa.Column("trades", sa.BigInteger, nullable=True),
        sa.Column("taker_buy_base", ExactDecimal, nullable=True),
        sa.Column("taker_buy_quote", ExactDecimal, nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("fetched_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "known_gaps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("first_open_time", sa.BigInteger, nullable=False),
        sa.Column("last_open_time", sa.BigInteger, nullable=False),
        sa.Column("detected_at", sa.BigInteger, nullable=False),
        sa.Column("checked_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("symbol", "interval", "first_open_time", name="uq_known_gaps_start"),
    )
    op.create_table(
        "job_ticks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("tick", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("claimed_by", sa.String(128), nullable=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(20), nullable=True),
        sa.Column("interval", sa.String(4), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("host", sa.String(128), nullable=True),
    )
    op.create_index("ix_job_runs_name_started", "job_runs", ["name", "started_at"])
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("algorithm", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("train_start", sa.BigInteger, nullable=False),
        sa.Column("train_end", sa.BigInteger, nullable=False),
        sa.Column("data_fingerprint", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision", sa.JSON, nullable=True),
    )
    op.create_index("ix_models_pair_status", "models", ["symbol", "interval", "status"])
    op.create_table(
        "model_artifacts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "forecasts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("symbol", sa.String(20), nullable=False),
        sa.Column("interval", sa.String(4), nullable=False),
        sa.Column("made_at", sa.BigInteger, nullable=False),
        sa.Column("made_at_exchange", sa.BigInteger, nullable=True),
        sa.Column("asof_open_time", sa.BigInteger, nullable=False),
        sa.Column("target_open_time", sa.BigInteger, nullable=False),
        sa.Column("asof_close", ExactDecimal, nullable=False),
        sa.Column("pred_open", ExactDecimal, nullable=False),
        sa.Column("pred_high", ExactDecimal, nullable=False),
        sa.Column("pred_low", ExactDecimal, nullable=False),
        sa.Column("pred_close", ExactDecimal, nullable=False),
        sa.Column("pred_range", ExactDecimal, nullable=False),
        sa.Column("close_lo", ExactDecimal, nullable=False),
        sa.Column("close_hi", ExactDecimal, nullable=False),
        sa.Column("interval_level", ExactDecimal, nullable=False),
        sa.Column("prob_up", ExactDecimal, nullable=False),
        sa.Column("baselines", sa.JSON, nullable=False),
        sa.Column("real_open", ExactDecimal, nullable=True),
        sa.Column("real_high", ExactDecimal, nullable=True),
        sa.Column("real_low", ExactDecimal, nullable=True),
        sa.Column("real_close", ExactDecimal, nullable=True),
        sa.Column("scored_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("model_id", "target_open_time", name="uq_forecasts_model_target"),
    )
    op.create_index(
        "ix_forecasts_pair_target", "forecasts", ["symbol", "interval", "target_open_time"]
    )


def downgrade() -> None:
    op.drop_index("ix_forecasts_pair_target", table_name="forecasts")
    op.drop_table("forecasts")
    op.drop_table("model_artifacts")
    op.drop_index("ix_models_pair_status", table_name="models")
    op.drop_table("models")
    op.drop_index("ix_job_runs_name_started", table_name="job_runs")
    op.drop_table("job_runs")
    op.drop_table("job_ticks")
    op.drop_table("known_gaps")
    op.drop_table("candles")
