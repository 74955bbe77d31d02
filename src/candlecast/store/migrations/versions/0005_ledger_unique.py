"""One forecast per target candle and pair, as a unique key the database enforces.

Duplicates a check-then-insert race left behind are deleted first, keeping the earliest
forecast of each candle (smallest made_at, then smallest id): the one made with the least
hindsight, which readers already showed. The unique index replaces the plain one on the
same columns, which it makes redundant.

Revision ID: 0005_ledger_unique
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_ledger_unique"
down_revision = "0004"
branch_labels = None
depends_on = None

_KEY = ["symbol", "interval", "target_open_time"]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Writers of the old code may still run: keep them out between the clean-up and the
        # index, or a duplicate inserted meanwhile would make the index fail. Reads go on.
        op.execute("LOCK TABLE forecasts IN SHARE ROW EXCLUSIVE MODE")
    # SQLite needs no lock: the DELETE makes this transaction the only writer until commit.
    forecasts = sa.table(
        "forecasts",
        sa.column("id"),
        sa.column("made_at"),
        *(sa.column(name) for name in _KEY),
    )
    earlier = forecasts.alias("earlier")
    op.execute(
        sa.delete(forecasts).where(
            sa.exists().where(
                *(earlier.c[name] == forecasts.c[name] for name in _KEY),
                sa.or_(
                    earlier.c.made_at < forecasts.c.made_at,
                    sa.and_(
                        earlier.c.made_at == forecasts.c.made_at, earlier.c.id < forecasts.c.id
                    ),
                ),
            )
        )
    )
    op.create_index("uq_forecasts_pair_target", "forecasts", _KEY, unique=True)
    op.drop_index("ix_forecasts_pair_target", table_name="forecasts")


def downgrade() -> None:
    op.create_index("ix_forecasts_pair_target", "forecasts", _KEY)
    op.drop_index("uq_forecasts_pair_target", table_name="forecasts")
