"""Users: the upsert every update does, chosen labels and language, and credit grants.

Every change of a balance here writes a ledger row in the same transaction, so a user's credits always
equal the sum of their ledger rows (`ledger_mismatches` lists any user for whom that is not so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.dialect import dialect_name, insert_or_skip
from db.models import LedgerEntry, User, ledger_table, users_table
from db.periods import utcnow

GRANT_REASONS = ("grant", "free", "admin_grant")
_INSERT_LEDGER = insert(ledger_table)


@dataclass(frozen=True, slots=True)
class UserView:
    tg_id: int
    username: str | None
    first_name: str | None
    last_name: str | None
    language: str | None  # chosen in the bot, else Telegram's
    is_admin: bool
    credits: int
    labels: Mapping[str, str]  # category -> chosen label
    created_at: datetime
    last_seen_at: datetime
    is_new: bool = False  # created by this upsert

    def label_for(self, category: str) -> str | None:
        return self.labels.get(str(category))


def _view(user: User, *, is_new: bool = False) -> UserView:
    return UserView(
        tg_id=user.id, username=user.username, first_name=user.first_name, last_name=user.last_name,
        language=user.language or user.tg_language, is_admin=user.is_admin, credits=user.credits,
        labels=dict(user.labels or {}), created_at=user.created_at, last_seen_at=user.last_seen_at,
        is_new=is_new,
    )


# The upsert runs on every update: prebuilt Core statements with bind parameters (building and caching a
# statement per call, and ORM identity-map bookkeeping, cost more CPU than SQLite spent running them).
_U = users_table.c
_VIEW_COLUMNS = (_U.id, _U.username, _U.first_name, _U.last_name, _U.language, _U.tg_language, _U.is_admin,
                 _U.credits, _U.labels, _U.created_at, _U.last_seen_at)
_FRESH = ("username", "first_name", "last_name", "tg_language", "is_admin", "last_seen_at")


def _bind(name: str) -> Any:
    return bindparam(f"p_{name}", type_=users_table.c[name].type)


_REFRESH = (update(users_table).where(_U.id == _bind("id")).values({n: _bind(n) for n in _FRESH})
            .returning(*_VIEW_COLUMNS))


@lru_cache(maxsize=4)
def _create(dialect: str) -> Any:
    names = ("id", "credits", "labels", "created_at", *_FRESH)
    return (insert_or_skip(dialect, users_table, "id").values({n: _bind(n) for n in names})
            .returning(*_VIEW_COLUMNS))


def _row_view(row: Any, *, is_new: bool = False) -> UserView:
    return UserView(
        tg_id=row.id, username=row.username, first_name=row.first_name, last_name=row.last_name,
        language=row.language or row.tg_language, is_admin=row.is_admin, credits=row.credits,
        labels=dict(row.labels or {}), created_at=row.created_at, last_seen_at=row.last_seen_at, is_new=is_new,
    )


async def upsert_user(
    session: AsyncSession, tg_id: int, *, username: str | None = None, first_name: str | None = None,
    last_name: str | None = None, language: str | None = None, is_admin: bool = False, free_credits: int = 0,
    now: datetime | None = None,
) -> UserView:
    """Refresh names, language, admin flag and last seen; a new user gets `free_credits` once."""
    now = now or utcnow()
    values = {"p_id": tg_id, "p_username": username, "p_first_name": first_name, "p_last_name": last_name,
              "p_tg_language": language, "p_is_admin": is_admin, "p_last_seen_at": now}
    conn = await session.connection()
    # The common case (a known user) is one UPDATE; only a miss tries the insert.
    refreshed = (await conn.execute(_REFRESH, values)).one_or_none()
    if refreshed is not None:
        return _row_view(refreshed)
    free = max(0, free_credits)
    created = (await conn.execute(_create(dialect_name(conn)), {
        **values, "p_credits": free, "p_labels": {}, "p_created_at": now})).one_or_none()
    if created is None:  # another session inserted it between our UPDATE and INSERT
        return await upsert_user(session, tg_id, username=username, first_name=first_name,
                                 last_name=last_name, language=language, is_admin=is_admin, now=now)
    if free:
        await conn.execute(_INSERT_LEDGER, {"user_id": tg_id, "delta": free, "reason": "free", "request_id": None,
                                            "by_admin": None, "created_at": now})
    return _row_view(created, is_new=True)


async def get_user(session: AsyncSession, tg_id: int) -> UserView | None:
    user = await session.get(User, tg_id, populate_existing=True)
    return None if user is None else _view(user)


async def set_label(session: AsyncSession, tg_id: int, label: str, *, category: str = "text") -> bool:
    """Remember the user's label for a category; False for an unknown user."""
    user = await session.get(User, tg_id, populate_existing=True)
    if user is None:
        return False
    user.labels = {**(user.labels or {}), str(category): label}  # a new dict, so the JSON change is seen
    await session.flush()
    return True


async def set_language(session: AsyncSession, tg_id: int, lang: str | None) -> bool:
    result = await session.execute(
        update(User).where(User.id == tg_id).values(language=lang).execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def grant_credits(
    session: AsyncSession, tg_id: int, credits: int, *, reason: str = "admin_grant", by: int | None = None,
    now: datetime | None = None,
) -> int | None:
    """Add (or, negative, take back) credits; the new balance, or None for an unknown user or when taking
    back more than the user has (nothing changes then)."""
    if reason not in GRANT_REASONS:
        raise ValueError(f"reason must be one of {GRANT_REASONS}")
    balance = (await session.execute(
        update(User).where(User.id == tg_id, User.credits + credits >= 0)
        .values(credits=User.credits + credits).returning(User.credits)
        .execution_options(synchronize_session=False)
    )).scalar_one_or_none()
    if balance is None:
        return None
    if credits:
        session.add(LedgerEntry(user_id=tg_id, delta=credits, reason=reason, by_admin=by,
                                created_at=now or utcnow()))
        await session.flush()
    return int(balance)


async def ledger_mismatches(session: AsyncSession) -> list[tuple[int, int, int]]:
    """(tg_id, credits, ledger sum) of every user whose balance is not the sum of their ledger rows."""
    sums = (
        select(LedgerEntry.user_id, func.sum(LedgerEntry.delta).label("total"))
        .group_by(LedgerEntry.user_id).subquery()
    )
    total = func.coalesce(sums.c.total, 0)
    rows = await session.execute(
        select(User.id, User.credits, total).outerjoin(sums, sums.c.user_id == User.id)
        .where(User.credits != total)
    )
    return [(int(a), int(b), int(c)) for a, b, c in rows.all()]
