"""Purchases of credits with Telegram Stars, and their refunds: each its own ledger row, in one transaction.

The rules, which the database enforces rather than any process's memory (several fronts, a webhook
redelivery, a restart between the grant and the reply):
- a purchase is keyed by Telegram's charge id (unique): the first insert grants the credits and writes the
  `purchase` ledger row; any later one for the same charge id finds it and grants nothing;
- a refund marks the payment `refunded` once (a conditional UPDATE) and takes back the purchase's credits,
  or what is left of them when the user has spent some: a balance goes to zero, never below;
- every balance moved here moves with its ledger row, so balances still equal the sums of their ledgers.

Functions take a session and never commit; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.dialect import dialect_name, insert_or_skip
from db.models import ledger_table, payments_table, users_table
from db.periods import utcnow

P, U = payments_table.c, users_table.c
_INSERT_LEDGER = insert(ledger_table)


@dataclass(frozen=True, slots=True)
class PaymentView:
    id: int
    charge_id: str
    user_id: int
    credits: int  # granted by the purchase
    stars: int
    status: str  # paid | refunded
    credits_debited: int  # taken back by the refund
    created_at: datetime
    refunded_at: datetime | None
    refunded_by: int | None

    @property
    def refunded(self) -> bool:
        return self.status == "refunded"


@dataclass(frozen=True, slots=True)
class Purchase:
    payment: PaymentView
    balance: int  # the user's credits after this call
    new: bool  # False: this charge id had been credited before, nothing was granted now


@dataclass(frozen=True, slots=True)
class Refund:
    payment: PaymentView  # as it stands after the refund
    balance: int
    new: bool  # False: it had been refunded before, nothing was taken now


_VIEW = (P.id, P.charge_id, P.user_id, P.credits, P.stars, P.status, P.credits_debited, P.created_at,
         P.refunded_at, P.refunded_by)


def _view(row: Any) -> PaymentView:
    return PaymentView(int(row.id), row.charge_id, int(row.user_id), int(row.credits), int(row.stars), row.status,
                       int(row.credits_debited), row.created_at, row.refunded_at, row.refunded_by)


@lru_cache(maxsize=4)
def _insert_payment(dialect: str) -> Any:
    return insert_or_skip(dialect, payments_table, "charge_id").returning(P.id)


async def _balance(conn: AsyncConnection, user_id: int, *, lock: bool = False) -> int:
    query = select(U.credits).where(U.id == user_id)
    return int((await conn.execute(query.with_for_update() if lock else query)).scalar_one())


async def _move(conn: AsyncConnection, user_id: int, delta: int, reason: str, payment_id: int,
                now: datetime) -> int:
    """Move a balance by `delta` with its ledger row; the new balance. Never below zero (the CHECK holds)."""
    balance = (await conn.execute(
        update(users_table).where(U.id == user_id, U.credits + delta >= 0)
        .values(credits=U.credits + delta).returning(U.credits))).scalar_one()
    await conn.execute(_INSERT_LEDGER, {"user_id": user_id, "delta": delta, "reason": reason, "request_id": None,
                                        "by_admin": None, "payment_id": payment_id, "created_at": now})
    return int(balance)


async def find_payment(session: AsyncSession, charge_id: str) -> PaymentView | None:
    row = (await session.execute(select(*_VIEW).where(P.charge_id == charge_id))).one_or_none()
    return None if row is None else _view(row)


async def payment_statuses(session: AsyncSession, charge_ids: Collection[str]) -> dict[str, str]:
    """The status (`paid` or `refunded`) of each of these charge ids that has a payment; the others are
    missing from the result."""
    if not charge_ids:
        return {}
    rows = await session.execute(select(P.charge_id, P.status).where(P.charge_id.in_(set(charge_ids))))
    return {str(charge_id): str(status) for charge_id, status in rows.all()}


async def user_payments(session: AsyncSession, user_id: int, limit: int = 5) -> list[PaymentView]:
    """The user's latest payments, newest first."""
    rows = await session.execute(select(*_VIEW).where(P.user_id == user_id)
                                 .order_by(P.created_at.desc(), P.id.desc()).limit(limit))
    return [_view(row) for row in rows.all()]


async def record_purchase(
    session: AsyncSession, *, charge_id: str, user_id: int, credits: int, stars: int, payload: str = "",
    provider_charge_id: str | None = None, now: datetime | None = None,
) -> Purchase:
    """Grant `credits` for the payment `charge_id`, once. A second call with the same charge id (from
    any process, at any time) grants nothing and returns the first one's payment with `new=False`."""
    if credits < 0 or stars <= 0:
        raise ValueError("a purchase grants credits >= 0 for stars > 0")
    now = now or utcnow()
    conn = await session.connection()
    payment_id = (await conn.execute(_insert_payment(dialect_name(conn)), {
        "charge_id": charge_id, "provider_charge_id": provider_charge_id or None, "user_id": user_id,
        "credits": credits, "stars": stars, "payload": payload, "status": "paid", "credits_debited": 0,
        "created_at": now})).scalar_one_or_none()
    if payment_id is None:  # credited before: by an earlier delivery, or by another process just now
        found = await find_payment(session, charge_id)
        assert found is not None, "the conflicting payment row exists"
        return Purchase(found, await _balance(conn, found.user_id), new=False)
    balance = await _move(conn, user_id, credits, "purchase", payment_id, now) if credits else \
        await _balance(conn, user_id)
    found = await find_payment(session, charge_id)
    assert found is not None
    return Purchase(found, balance, new=True)


async def record_refund(
    session: AsyncSession, charge_id: str, *, by: int | None = None, now: datetime | None = None
) -> Refund | None:
    """Mark the payment refunded and take its credits back, as many as the user still has; once. None for
    an unknown charge id. Call it after Telegram refunded the Stars (or told us it had)."""
    now = now or utcnow()
    conn = await session.connection()
    marked = (await conn.execute(
        update(payments_table).where(P.charge_id == charge_id, P.status == "paid")
        .values(status="refunded", refunded_at=now, refunded_by=by).returning(P.id, P.user_id, P.credits)
    )).one_or_none()
    if marked is None:
        found = await find_payment(session, charge_id)
        return None if found is None else Refund(found, await _balance(conn, found.user_id), new=False)
    payment_id, user_id, credits = int(marked.id), int(marked.user_id), int(marked.credits)
    # The row lock (PostgreSQL; SQLite already holds its one write lock) keeps a charge from landing
    # between reading the balance and taking from it.
    debit = min(credits, await _balance(conn, user_id, lock=True))
    balance = await _move(conn, user_id, -debit, "purchase_refund", payment_id, now) if debit else \
        await _balance(conn, user_id)
    await conn.execute(update(payments_table).where(P.id == payment_id).values(credits_debited=debit))
    found = await find_payment(session, charge_id)
    assert found is not None
    return Refund(found, balance, new=True)
