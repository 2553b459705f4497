"""Chat history for text conversations: appended per turn, read back newest-first within a size budget.

The hot path (one chat message) is `load_history(..., prune=True)` before the call and `append_exchange`
after it, as prebuilt Core statements. Pruning happens on that read, and only when a user has more than
`keep` turns stored, instead of a DELETE after every append: a user's table share stays within `keep`
plus one exchange, and a message costs no trimming statement at all until then.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import HistoryMessage
from db.periods import utcnow

KEEP_MESSAGES = 100  # per user; older turns can never fit a prompt anyway

_history = cast(Table, HistoryMessage.__table__)
_H = _history.c
_INSERT = insert(_history)
_NEWEST = (select(_H.id, _H.role, _H.content).where(_H.user_id == bindparam("user_id"))
           .order_by(_H.id.desc()).limit(bindparam("limit")))
_DROP_OLDER = delete(_history).where(_H.user_id == bindparam("user_id"), _H.id < bindparam("oldest_kept"))


async def append_message(
    session: AsyncSession, tg_id: int, role: str, content: str, *, keep: int = KEEP_MESSAGES,
    now: datetime | None = None,
) -> None:
    """Add one turn, and drop the user's turns older than the newest `keep`."""
    session.add(HistoryMessage(user_id=tg_id, role=role, content=content, created_at=now or utcnow()))
    await session.flush()
    oldest_kept = (
        select(HistoryMessage.id).where(HistoryMessage.user_id == tg_id)
        .order_by(HistoryMessage.id.desc()).offset(keep - 1).limit(1).scalar_subquery()
    )
    await session.execute(
        delete(HistoryMessage).where(HistoryMessage.user_id == tg_id, HistoryMessage.id < oldest_kept)
        .execution_options(synchronize_session=False)
    )


async def append_exchange(
    session: AsyncSession, tg_id: int, question: str, answer: str, *, now: datetime | None = None
) -> None:
    """Add a user turn and the assistant's answer in one statement; no pruning (`load_history` prunes)."""
    at = now or utcnow()
    conn = await session.connection()
    await conn.execute(_INSERT, [
        {"user_id": tg_id, "role": "user", "content": question, "created_at": at},
        {"user_id": tg_id, "role": "assistant", "content": answer, "created_at": at},
    ])


async def load_history(
    session: AsyncSession, tg_id: int, max_chars: int, *, keep: int = KEEP_MESSAGES, prune: bool = False
) -> list[tuple[str, str]]:
    """(role, content) oldest first: the newest turns whose contents fit in `max_chars` together.

    The newest turn is always kept; when it alone is too long, its last `max_chars` characters are.
    Only the newest `keep` turns are considered; with `prune`, older ones are deleted when there are any.
    """
    conn = await session.connection()
    rows = (await conn.execute(_NEWEST, {"user_id": tg_id, "limit": keep + 1})).all()
    if len(rows) > keep:
        rows = rows[:keep]
        if prune and rows:
            await conn.execute(_DROP_OLDER, {"user_id": tg_id, "oldest_kept": rows[-1].id})
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


async def clear_history(session: AsyncSession, tg_id: int) -> int:
    result = await session.execute(
        delete(HistoryMessage).where(HistoryMessage.user_id == tg_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
