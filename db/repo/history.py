"""Chat history for text conversations: appended per turn, read back newest-first within a size budget.

A conversation is a private chat, a group, or a forum topic of a group (`Conversation`): in a group every
member who talks to the bot adds to, and reads, the same history, so a group conversation flows.

The hot path (one chat message) is `load_history(..., prune=True)` before the call and `append_exchange`
after it, as prebuilt Core statements. Pruning happens on that read, and only when a conversation has more
than `keep` turns stored, instead of a DELETE after every append: a conversation's table share stays within
`keep` plus one exchange, and a message costs no trimming statement at all until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import HistoryMessage
from db.periods import utcnow

KEEP_MESSAGES = 100  # per conversation; older turns can never fit a prompt anyway


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where turns are kept together: a chat, and the forum topic in it (0: none)."""

    chat_id: int
    thread_id: int = 0

    @classmethod
    def private(cls, user_id: int) -> Conversation:
        """A user's private chat with the bot (its id is the user's)."""
        return cls(user_id)


_history = cast(Table, HistoryMessage.__table__)
_H = _history.c
_INSERT = insert(_history)
_IN_CONVERSATION = (_H.chat_id == bindparam("chat_id")) & (_H.thread_id == bindparam("thread_id"))
_NEWEST = select(_H.id, _H.role, _H.content).where(_IN_CONVERSATION).order_by(_H.id.desc()).limit(bindparam("limit"))
_DROP_OLDER = delete(_history).where(_IN_CONVERSATION, _H.id < bindparam("oldest_kept"))


def _key(conversation: Conversation) -> dict[str, int]:
    return {"chat_id": conversation.chat_id, "thread_id": conversation.thread_id}


async def append_message(
    session: AsyncSession, conversation: Conversation, user_id: int, role: str, content: str, *,
    keep: int = KEEP_MESSAGES, now: datetime | None = None,
) -> None:
    """Add one turn, and drop the conversation's turns older than the newest `keep`."""
    session.add(HistoryMessage(user_id=user_id, chat_id=conversation.chat_id, thread_id=conversation.thread_id,
                               role=role, content=content, created_at=now or utcnow()))
    await session.flush()
    in_conversation = (HistoryMessage.chat_id == conversation.chat_id) \
        & (HistoryMessage.thread_id == conversation.thread_id)
    oldest_kept = (
        select(HistoryMessage.id).where(in_conversation)
        .order_by(HistoryMessage.id.desc()).offset(keep - 1).limit(1).scalar_subquery()
    )
    await session.execute(
        delete(HistoryMessage).where(in_conversation, HistoryMessage.id < oldest_kept)
        .execution_options(synchronize_session=False)
    )


async def append_exchange(
    session: AsyncSession, conversation: Conversation, user_id: int, question: str, answer: str, *,
    now: datetime | None = None,
) -> None:
    """Add a user turn and the assistant's answer in one statement; no pruning (`load_history` prunes)."""
    at = now or utcnow()
    conn = await session.connection()
    turn = {"user_id": user_id, **_key(conversation), "created_at": at}
    await conn.execute(_INSERT, [{**turn, "role": "user", "content": question},
                                 {**turn, "role": "assistant", "content": answer}])


async def load_history(
    session: AsyncSession, conversation: Conversation, max_chars: int, *, keep: int = KEEP_MESSAGES,
    prune: bool = False,
) -> list[tuple[str, str]]:
    """(role, content) oldest first: the newest turns whose contents fit in `max_chars` together.

    The newest turn is always kept; when it alone is too long, its last `max_chars` characters are.
    Only the newest `keep` turns are considered; with `prune`, older ones are deleted when there are any.
    """
    conn = await session.connection()
    rows = (await conn.execute(_NEWEST, {**_key(conversation), "limit": keep + 1})).all()
    if len(rows) > keep:
        rows = rows[:keep]
        if prune and rows:
            await conn.execute(_DROP_OLDER, {**_key(conversation), "oldest_kept": rows[-1].id})
    kept: list[tuple[str, str]] = []
    used = 0
    for _id, role, content in rows:
        if used + len(content) > max_chars:
            if not kept and max_chars > 0:
                kept.append((role, content[-max_chars:]))
            break
        kept.append((role, content))
        used += len(content)
    kept.reverse()
    return kept


async def clear_history(session: AsyncSession, conversation: Conversation) -> int:
    result = await session.execute(
        delete(HistoryMessage).where(HistoryMessage.chat_id == conversation.chat_id,
                                     HistoryMessage.thread_id == conversation.thread_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
