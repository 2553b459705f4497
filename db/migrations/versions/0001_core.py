"""Core tables: users, requests, attempts, the credit ledger and chat history.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite auto-increments INTEGER keys only


def _zero(name: str, type_: sa.types.TypeEngine[int] | None = None) -> sa.Column[int]:
    return sa.Column(name, type_ or sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(64)),
        sa.Column("first_name", sa.String(128)),
        sa.Column("last_name", sa.String(128)),
        sa.Column("tg_language", sa.String(16)),
        sa.Column("language", sa.String(16)),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        _zero("credits"),
        sa.Column("labels", sa.JSON(), nullable=False),
        _zero("spent_day_key", sa.Integer()),
        _zero("spent_day"),
        _zero("spent_month_key", sa.Integer()),
        _zero("spent_month"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("credits >= 0", name=op.f("ck_users_credits_not_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "requests",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger()),
        sa.Column("update_id", sa.BigInteger()),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("prompt", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("route_first_provider", sa.String(64)),
        sa.Column("provider", sa.String(64)),
        sa.Column("model", sa.String(128)),
        sa.Column("fallback", sa.Boolean(), server_default=sa.false(), nullable=False),
        _zero("cost_micros"),
        sa.Column("price_snapshot", sa.JSON()),
        _zero("credits_charged", sa.Integer()),
        _zero("credits_refunded", sa.Integer()),
        sa.Column("latency_ms", sa.Integer()),
        sa.Column("usage", sa.JSON()),
        sa.Column("error_kind", sa.String(32)),
        sa.Column("error_message", sa.String(300)),
        sa.Column("provider_job_id", sa.String(255)),
        sa.Column("job_provider", sa.String(64)),
        sa.Column("job_model", sa.String(128)),
        sa.Column("budget_day_key", sa.Integer()),
        sa.Column("budget_month_key", sa.Integer()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.CheckConstraint("status IN ('pending', 'running', 'served', 'failed', 'canceled')",
                           name=op.f("ck_requests_status")),
        sa.CheckConstraint("credits_refunded >= 0 AND credits_refunded <= credits_charged",
                           name=op.f("ck_requests_refund_range")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_requests_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
        sa.UniqueConstraint("update_id", name=op.f("uq_requests_update_id")),
    )
    op.create_index("ix_requests_user_created", "requests", ["user_id", "created_at"])
    op.create_index("ix_requests_created_cover", "requests",
                    ["created_at", "status", "user_id", "credits_charged", "credits_refunded", "cost_micros"])
    op.create_index("ix_requests_status_created", "requests", ["status", "created_at"])
    op.create_table(
        "attempts",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("request_id", ROW_ID, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32)),
        sa.Column("http_status", sa.Integer()),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        _zero("cost_micros"),
        sa.Column("job_id", sa.String(255)),
        sa.Column("message", sa.String(300)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"], name=op.f("fk_attempts_request_id_requests"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index("ix_attempts_request_id", "attempts", ["request_id"])
    op.create_table(
        "credit_ledger",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("request_id", ROW_ID),
        sa.Column("by_admin", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("reason IN ('grant', 'free', 'charge', 'refund', 'admin_grant')",
                           name=op.f("ck_credit_ledger_reason")),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"],
                                name=op.f("fk_credit_ledger_request_id_requests")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_credit_ledger_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_ledger")),
    )
    op.create_index("ix_credit_ledger_user_id", "credit_ledger", ["user_id"])
    op.create_index("ix_credit_ledger_request_id", "credit_ledger", ["request_id"])
    op.create_table(
        "chat_history",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_chat_history_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_history")),
    )
    op.create_index("ix_chat_history_user_id_id", "chat_history", ["user_id", "id"])


def downgrade() -> None:
    for table in ("chat_history", "credit_ledger", "attempts", "requests", "users"):
        op.drop_table(table)  # their indexes go with them
