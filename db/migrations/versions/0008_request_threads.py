"""The forum topic a request was asked in, so that its answer goes there even after a restart.

- `requests.thread_id`: the message thread (forum topic) of the group the request was asked in; NULL for
  a private chat, a group without topics, or its main chat. A request resumed by the sweeper after a crash
  is rebuilt from its row, and without it the answer went to the group's main chat. Existing rows stay
  NULL: where they were asked is not known.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("thread_id", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("thread_id")
