"""Money moves of a request's life: the one conditional charge, why a charge was refused, the ledger row.

Called by `db.repo.lifecycle` inside its transitions' transactions; never on their own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from db.models import users_table
from db.repo import statements
from db.repo.records import Budget, ReservationStatus

U = users_table.c


async def ledger(conn: AsyncConnection, tg_id: int, delta: int, reason: str, request_id: int, now: datetime) -> None:
    await conn.execute(statements.INSERT_LEDGER, {
        "user_id": tg_id, "delta": delta, "reason": reason, "request_id": request_id, "created_at": now})


async def charge(
    conn: AsyncConnection, tg_id: int, credits: int, budget: Budget, day_key: int, month_key: int
) -> int | None:
    """The one conditional UPDATE (statements.charge); None when it matched no row."""
    stmt = statements.charge(bool(budget.per_day), bool(budget.per_month))
    values = {"p_user_id": tg_id, "p_credits": credits, "p_day_key": day_key, "p_month_key": month_key,
              "p_per_day": budget.per_day, "p_per_month": budget.per_month}
    balance = (await conn.execute(stmt, values)).scalar_one_or_none()
    return None if balance is None else int(balance)


async def refusal(
    conn: AsyncConnection, tg_id: int, credits: int, budget: Budget, day_key: int, month_key: int
) -> tuple[ReservationStatus, int]:
    """Why the charge matched no row (read after the fact, only to word the answer)."""
    row = (await conn.execute(
        select(U.credits, U.spent_day_key, U.spent_day, U.spent_month_key, U.spent_month).where(U.id == tg_id)
    )).one_or_none()
    if row is None:
        raise LookupError(f"unknown user {tg_id}")
    balance, d_key, d_spent, m_key, m_spent = row
    if balance < credits:
        return "insufficient", balance
    if budget.per_day and (d_spent if d_key == day_key else 0) + credits > budget.per_day:
        return "budget_day", balance
    if budget.per_month and (m_spent if m_key == month_key else 0) + credits > budget.per_month:
        return "budget_month", balance
    return "insufficient", balance  # the balance moved between the UPDATE and this read


async def balance(conn: AsyncConnection, tg_id: int) -> int:
    return int(await conn.scalar(select(U.credits).where(U.id == tg_id)) or 0)
