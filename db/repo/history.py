"""Chat history for text conversations: appended per turn, read back newest-first within a size budget."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import HistoryMessage
from db.periods import utcnow

KEEP_MESSAGES = 100  # per user; older turns can never fit a prompt anyway


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


async def load_history(session: AsyncSession, tg_id: int, max_chars: int) -> list[tuple[str, str]]:
    """(role, content) oldest first: the newest turns whose contents fit in `max_chars` together.

    The newest turn is always kept; when it alone is too long, its last `max_chars` characters are.
    """
    rows = await session.execute(
        select(HistoryMessage.role, HistoryMessage.content).where(HistoryMessage.user_id == tg_id)
        .order_by(HistoryMessage.id.desc())
    )
    kept: list[tuple[str, str]] = []
    used = 0
    for role, content in rows.all():
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
