"""Positions in lists read from outside, oldest first (Telegram's Star transactions): how many items of a
list have been read, so the next read starts after them.

A position only moves forward: two readers that overlap (two fronts, a run that outlived its claim) may
both store theirs, and the smaller one never wins. Functions take a session and never commit.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.dialect import dialect_name, insert_or_skip
from db.models import feed_positions_table
from db.periods import utcnow

F = feed_positions_table.c


@lru_cache(maxsize=4)
def _insert_position(dialect: str) -> Any:
    return insert_or_skip(dialect, feed_positions_table, "name")


async def read_position(session: AsyncSession, name: str) -> int:
    """The number of items of `name` read so far; 0 for a list never read."""
    found = (await session.execute(select(F.position).where(F.name == name))).scalar_one_or_none()
    return 0 if found is None else int(found)


async def advance_position(session: AsyncSession, name: str, position: int, *, now: datetime | None = None
                           ) -> int:
    """Move `name` forward to `position`; a smaller one than stored changes nothing. The stored position."""
    if position < 0:
        raise ValueError("a position counts items read: never negative")
    now = now or utcnow()
    conn = await session.connection()
    await conn.execute(_insert_position(dialect_name(conn)), {"name": name, "position": position, "updated_at": now})
    await conn.execute(update(feed_positions_table).where(F.name == name, F.position < position)
                       .values(position=position, updated_at=now))
    return await read_position(session, name)
