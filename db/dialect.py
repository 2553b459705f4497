"""The few places where SQLite and PostgreSQL need different SQL, chosen from the session's bind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, cast, extract, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_for(session: AsyncSession, table: Any) -> Any:
    """`insert` of the current dialect, which knows `on_conflict_do_nothing/update` (both speak it)."""
    name = dialect_name(session)
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert for the {name} dialect")


def epoch_seconds_sql(session: AsyncSession, column: Any) -> ColumnElement[int]:
    """Seconds since 1970 of a naive-UTC timestamp column, as an integer."""
    if dialect_name(session) == "sqlite":
        return cast(func.strftime("%s", column), BigInteger)
    # EXTRACT(EPOCH) of a timestamp without time zone reads it as UTC, which is how it is stored
    return cast(func.floor(extract("epoch", column)), BigInteger)


async def upsert_add(
    session: AsyncSession, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert the rows, or add their counters to the existing rows with the same key: one statement.

    Every row must carry the same columns (the rows of one call are the grains of one event).
    """
    if not rows:
        return
    stmt = insert_for(session, table).values(list(rows))
    counters = [name for name in rows[0] if name not in keys]
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={name: table.c[name] + stmt.excluded[name] for name in counters},
    )
    await session.execute(stmt)
