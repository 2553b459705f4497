"""Rollups kept on write, so stats stay fast on millions of requests.

Hourly and daily rows per provider and category, and per category for requests; per user in dyadic blocks
of 1-16 days. A database that already holds requests fills them with db.repo.rollups.rebuild_rollups.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILURE_KINDS = ("rate_limited", "quota_exhausted", "auth", "unavailable", "invalid_response", "bad_request",
                 "content_policy", "other")
LATENCY_BUCKETS = 38  # six per decade from 10 ms to 10^7 ms, plus the open ends


def _counters(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), server_default="0", nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "provider_rollups",
        sa.Column("grain", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        *_counters("attempts", "successes", *[f"f_{kind}" for kind in FAILURE_KINDS], "cost_micros",
                   "latency_ms_sum", "served", "fallbacks", *[f"lat_{i:02d}" for i in range(LATENCY_BUCKETS)]),
        sa.PrimaryKeyConstraint("grain", "start", "provider", "category", name=op.f("pk_provider_rollups")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "request_rollups",
        sa.Column("grain", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        *_counters("requests", "served", "failed", "canceled", "fallbacks", "credits_charged",
                   "credits_refunded", "cost_micros"),
        sa.PrimaryKeyConstraint("grain", "start", "category", name=op.f("pk_request_rollups")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "user_rollups",
        sa.Column("grain_days", sa.Integer(), nullable=False),
        sa.Column("start_day", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        *_counters("requests", "credits", "cost_micros"),
        sa.PrimaryKeyConstraint("grain_days", "start_day", "user_id", name=op.f("pk_user_rollups")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for table in ("user_rollups", "request_rollups", "provider_rollups"):
        op.drop_table(table)
