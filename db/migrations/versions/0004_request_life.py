"""The life of a request as a state machine with leases: reserved, running, then one terminal state.

- `pending` becomes `reserved`; `refused` is new (a refusal is a row with its reason and no charge).
- `owner` and `lease_until`: which process works on an open request, and until when; the sweeper takes
  requests whose lease ran out.
- `delivering_at` / `delivered_at`: the owner is about to send the answer / the first part of it reached
  Telegram. A request is refunded only while `delivered_at` is empty, and /cancel refunds only before
  `delivering_at`.
- `request_rollups.refused`: refusals counted per hour and day, apart from the requests that ran.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "status IN ('pending', 'running', 'served', 'failed', 'canceled')"
NEW = "status IN ('reserved', 'running', 'served', 'failed', 'canceled', 'refused')"


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint(op.f("ck_requests_status"), type_="check")
        batch.add_column(sa.Column("owner", sa.String(64)))
        batch.add_column(sa.Column("lease_until", sa.DateTime()))
        batch.add_column(sa.Column("delivering_at", sa.DateTime()))
        batch.add_column(sa.Column("delivered_at", sa.DateTime()))
    op.execute("UPDATE requests SET status = 'reserved' WHERE status = 'pending'")
    with op.batch_alter_table("requests") as batch:
        batch.create_check_constraint(op.f("ck_requests_status"), sa.text(NEW))
    # The sweeper reads open requests by lease; open requests are few, the index stays small.
    op.create_index("ix_requests_status_lease", "requests", ["status", "lease_until"])
    with op.batch_alter_table("request_rollups") as batch:
        batch.add_column(sa.Column("refused", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("request_rollups") as batch:
        batch.drop_column("refused")
    op.drop_index("ix_requests_status_lease", table_name="requests")
    op.execute("DELETE FROM requests WHERE status = 'refused'")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint(op.f("ck_requests_status"), type_="check")
    op.execute("UPDATE requests SET status = 'pending' WHERE status = 'reserved'")
    with op.batch_alter_table("requests") as batch:
        for column in ("delivered_at", "delivering_at", "lease_until", "owner"):
            batch.drop_column(column)
        batch.create_check_constraint(op.f("ck_requests_status"), sa.text(OLD))
