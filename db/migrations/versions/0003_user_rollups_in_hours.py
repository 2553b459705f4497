"""Per-user rollups in hour-aligned blocks (6 hours, then 1-16 days), refilled from the requests.

Day blocks left up to a day of raw rows to read at the edges of a period in a non-UTC timezone; 6-hour
blocks leave under 6 hours at each end.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLOSED = "('served', 'failed', 'canceled')"


def _epoch_hour() -> str:
    if op.get_bind().dialect.name == "sqlite":
        return "CAST(strftime('%s', created_at) AS INTEGER) / 3600"
    return "CAST(FLOOR(EXTRACT(EPOCH FROM created_at)) AS BIGINT) / 3600"


def _create(grain: str, start: str) -> None:
    op.create_table(
        "user_rollups",
        sa.Column(grain, sa.Integer(), nullable=False),
        sa.Column(start, sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        *[sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
          for name in ("requests", "credits", "cost_micros")],
        sa.PrimaryKeyConstraint(grain, start, "user_id", name=op.f("pk_user_rollups")),
        sqlite_with_rowid=False,
    )


def _fill(grain: str, start: str, finest: int, unit: str, larger: Sequence[int]) -> None:
    """The finest blocks from the requests, then each larger grain from the finest."""
    columns = f"{grain}, {start}, user_id, requests, credits, cost_micros"
    op.execute(
        f"INSERT INTO user_rollups ({columns}) SELECT {finest}, ({unit}) / {finest} * {finest}, user_id, "
        f"COUNT(*), SUM(credits_charged - credits_refunded), SUM(cost_micros) FROM requests "
        f"WHERE status IN {CLOSED} GROUP BY ({unit}) / {finest}, user_id"
    )
    for g in larger:
        op.execute(
            f"INSERT INTO user_rollups ({columns}) SELECT {g}, {start} / {g} * {g}, user_id, SUM(requests), "
            f"SUM(credits), SUM(cost_micros) FROM user_rollups WHERE {grain} = {finest} "
            f"GROUP BY {start} / {g}, user_id"
        )


def upgrade() -> None:
    op.drop_table("user_rollups")
    _create("grain_hours", "start_hour")
    _fill("grain_hours", "start_hour", 6, _epoch_hour(), (24, 48, 96, 192, 384))


def downgrade() -> None:
    op.drop_table("user_rollups")
    _create("grain_days", "start_day")
    _fill("grain_days", "start_day", 1, f"{_epoch_hour()} / 24", (2, 4, 8, 16))
