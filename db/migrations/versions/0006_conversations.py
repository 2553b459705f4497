"""Chat history per conversation instead of per user: groups and forum topics have one of their own.

- `chat_history.chat_id`, `chat_history.thread_id`: the conversation a turn belongs to (a private chat,
  a group, or a forum topic of a group; `thread_id` 0 for none). Until now only private chats had a
  history, and a private chat's id is its user's id: existing turns get `chat_id = user_id`.
- `ix_chat_history_conversation` (chat_id, thread_id, id) replaces the per-user index: the newest turns
  of a conversation are read, and pruned, by it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chat_history") as batch:
        batch.add_column(sa.Column("chat_id", sa.BigInteger()))
        batch.add_column(sa.Column("thread_id", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE chat_history SET chat_id = user_id")
    with op.batch_alter_table("chat_history") as batch:
        batch.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
        batch.drop_index("ix_chat_history_user_id_id")
        batch.create_index("ix_chat_history_conversation", ["chat_id", "thread_id", "id"])


def downgrade() -> None:
    # a group's turns have no user's private conversation to go back to: only private chats' are kept
    op.execute("DELETE FROM chat_history WHERE chat_id <> user_id OR thread_id <> 0")
    with op.batch_alter_table("chat_history") as batch:
        batch.drop_index("ix_chat_history_conversation")
        batch.create_index("ix_chat_history_user_id_id", ["user_id", "id"])
        batch.drop_column("thread_id")
        batch.drop_column("chat_id")
