"""The few places where SQLite and PostgreSQL need different SQL, chosen from the session's bind."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, cast, extract, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Db = AsyncSession | AsyncConnection  # hot paths pass the session's connection: it skips a layer per statement


def dialect_name(db: Db) -> str:
    return db.dialect.name if isinstance(db, AsyncConnection) else db.get_bind().dialect.name


def epoch_seconds_sql(session: Db, column: Any) -> ColumnElement[int]:
    """Seconds since 1970 of a naive-UTC timestamp column, as an integer."""
    if dialect_name(session) == "sqlite":
        return cast(func.strftime("%s", column), BigInteger)
    # EXTRACT(EPOCH) of a timestamp without time zone reads it as UTC, which is how it is stored
    return cast(func.floor(extract("epoch", column)), BigInteger)


def insert_or_skip(dialect: str, table: Table, key: str) -> Any:
    """INSERT into `table` that skips a row whose `key` exists (ON CONFLICT DO NOTHING, which both speak).
    Callers build it once and cache it."""
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=[key])


def _insert(dialect: str, table: Table) -> Any:
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


@lru_cache(maxsize=512)
def _upsert(dialect: str, table: Table, keys: tuple[str, ...], counters: tuple[str, ...]) -> Any:
    # Built once per shape: building `excluded` and compiling cost more than running the statement
    stmt = _insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={name: table.c[name] + stmt.excluded[name] for name in counters},
    )


async def upsert_add(
    session: Db, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    """Insert the rows, or add their counters to the existing rows with the same key: one executemany.

    Every row must carry the same columns (the rows of one call are the grains of one event).
    """
    if not rows:
        return
    name = dialect_name(session)
    if name not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no upsert for the {name} dialect")
    counters = tuple(column for column in rows[0] if column not in keys)
    await session.execute(_upsert(name, table, tuple(keys), counters), in_key_order(keys, counters, rows))


def in_key_order(
    keys: Sequence[str], counters: Sequence[str], rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows merged by key (counters added) and sorted by key.

    PostgreSQL keeps every row an upsert touched locked until the transaction ends. Two transactions that
    touch the same rollup rows in different orders deadlock (a close whose attempts went alpha then beta
    against one that went beta then alpha; or a served row put before its attempts'), and PostgreSQL
    aborts one of them. In key order they only ever wait for each other. SQLite, one writer at a time,
    gets the same sums either way.
    """
    if len(rows) == 1:
        return list(rows)
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        into = merged.get(key)
        if into is None:
            merged[key] = dict(row)
        else:
            for name in counters:
                into[name] += row[name]
    return [merged[key] for key in sorted(merged)]
