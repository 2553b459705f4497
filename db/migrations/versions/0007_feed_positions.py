"""How far the bot has read Telegram's list of its Star transactions.

- `feed_positions`: one row per list read from outside (`name`), with the number of its items already
  read (`position`, never negative). The Star transactions' reconciliation reads from there on each run
  instead of the whole list again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feed_positions",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("position >= 0", name=op.f("ck_feed_positions_position_not_negative")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_feed_positions")),
    )


def downgrade() -> None:
    op.drop_table("feed_positions")
