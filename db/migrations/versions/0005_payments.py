"""Credits bought with Telegram Stars.

- `payments`: one row per Telegram charge id (`uq_payments_charge_id`), so a purchase is credited once
  however often Telegram delivers it; a refund marks the row and says how many credits it took back.
- `credit_ledger.payment_id`: the ledger row of a purchase or of its refund; at most one per payment and
  reason (`uq_credit_ledger_payment_id`). Two new reasons: `purchase` and `purchase_refund`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments an INTEGER PRIMARY KEY, as in 0001
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD = "reason IN ('grant', 'free', 'charge', 'refund', 'admin_grant')"
NEW = "reason IN ('grant', 'free', 'charge', 'refund', 'admin_grant', 'purchase', 'purchase_refund')"


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", ROW_ID, nullable=False),
        sa.Column("charge_id", sa.String(255), nullable=False),
        sa.Column("provider_charge_id", sa.String(255)),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("stars", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credits_debited", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("refunded_at", sa.DateTime()),
        sa.Column("refunded_by", sa.BigInteger()),
        sa.CheckConstraint("status IN ('paid', 'refunded')", name=op.f("ck_payments_status")),
        sa.CheckConstraint("stars > 0", name=op.f("ck_payments_stars_positive")),
        sa.CheckConstraint("credits >= 0", name=op.f("ck_payments_credits_not_negative")),
        sa.CheckConstraint("credits_debited >= 0 AND credits_debited <= credits",
                           name=op.f("ck_payments_debit_range")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_payments_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_payments_charge_id")),
    )
    op.create_index("ix_payments_user_id", "payments", ["user_id"])
    op.create_index("ix_payments_created_at", "payments", ["created_at"])
    op.create_index("ix_payments_refunded_at", "payments", ["refunded_at"])
    with op.batch_alter_table("credit_ledger") as batch:
        batch.drop_constraint(op.f("ck_credit_ledger_reason"), type_="check")
        batch.add_column(sa.Column("payment_id", ROW_ID))
        batch.create_foreign_key(op.f("fk_credit_ledger_payment_id_payments"), "payments", ["payment_id"], ["id"])
        batch.create_unique_constraint(op.f("uq_credit_ledger_payment_id"), ["payment_id", "reason"])
        batch.create_check_constraint(op.f("ck_credit_ledger_reason"), sa.text(NEW))


def downgrade() -> None:
    # Purchases leave with their table: the balances they moved keep their ledger rows as admin grants,
    # so every balance still equals the sum of its ledger rows.
    op.execute("UPDATE credit_ledger SET reason = 'admin_grant', payment_id = NULL"
               " WHERE reason IN ('purchase', 'purchase_refund')")
    with op.batch_alter_table("credit_ledger") as batch:
        batch.drop_constraint(op.f("ck_credit_ledger_reason"), type_="check")
        batch.drop_constraint(op.f("uq_credit_ledger_payment_id"), type_="unique")
        batch.drop_constraint(op.f("fk_credit_ledger_payment_id_payments"), type_="foreignkey")
        batch.drop_column("payment_id")
        batch.create_check_constraint(op.f("ck_credit_ledger_reason"), sa.text(OLD))
    op.drop_table("payments")  # its indexes go with it
