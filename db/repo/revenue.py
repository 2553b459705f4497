"""Revenue for /stats, the digest, /export and /payments: Stars received and refunded in a period.

A purchase counts in the period it was paid, a refund in the period it was refunded (so last month's
figures never change when a purchase is refunded today). Periods are read as whole UTC hours, as the
request stats are (`Period.hour_bounds()`), so revenue and provider cost cover the same span. Purchases
are few beside requests: they are read from the payments table itself, by its indexes on the two times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Payment, User
from db.periods import Period


@dataclass(frozen=True, slots=True)
class Revenue:
    purchases: int = 0
    stars_paid: int = 0
    credits_sold: int = 0
    refunds: int = 0
    stars_refunded: int = 0
    credits_debited: int = 0

    @property
    def stars_net(self) -> int:
        return self.stars_paid - self.stars_refunded

    @property
    def any(self) -> bool:
        return bool(self.purchases or self.refunds)


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A purchase (`kind` "purchase") or a refund ("refund") as it happened; refunds carry what they took."""

    kind: str
    at: datetime
    charge_id: str
    user_id: int
    username: str | None
    first_name: str | None
    credits: int  # granted by a purchase; taken back by a refund
    stars: int  # received by a purchase; returned by a refund


async def revenue(session: AsyncSession, period: Period) -> Revenue:
    start, end = period.hour_bounds()
    paid = (await session.execute(
        select(func.count(), func.sum(Payment.stars), func.sum(Payment.credits))
        .where(Payment.created_at >= start, Payment.created_at < end))).one()
    refunded = (await session.execute(
        select(func.count(), func.sum(Payment.stars), func.sum(Payment.credits_debited))
        .where(Payment.refunded_at >= start, Payment.refunded_at < end))).one()
    return Revenue(*(int(v or 0) for v in (*paid, *refunded)))


def _events(period: Period) -> Any:
    start, end = period.hour_bounds()
    p = Payment
    bought = select(literal("purchase").label("kind"), p.created_at.label("at"), p.charge_id,
                    p.user_id, p.credits.label("credits"), p.stars).where(p.created_at >= start, p.created_at < end)
    refunded = select(literal("refund").label("kind"), p.refunded_at.label("at"), p.charge_id,
                      p.user_id, p.credits_debited.label("credits"), p.stars
                      ).where(p.refunded_at >= start, p.refunded_at < end)
    return union_all(bought, refunded).subquery()


async def payment_events(session: AsyncSession, period: Period, limit: int | None = None) -> list[PaymentEvent]:
    """Purchases and refunds of the period, newest first (at most `limit`)."""
    events = _events(period)
    query = (select(events, User.username, User.first_name).outerjoin(User, User.id == events.c.user_id)
             .order_by(events.c.at.desc(), events.c.charge_id))
    if limit is not None:
        query = query.limit(limit)
    return [PaymentEvent(row.kind, _aware(row.at), row.charge_id, int(row.user_id), row.username, row.first_name,
                         int(row.credits), int(row.stars)) for row in (await session.execute(query)).all()]


async def export_payment_rows(session: AsyncSession, period: Period) -> AsyncIterator[dict[str, Any]]:
    """One dict per purchase or refund of the period, oldest first, for the CSV."""
    for event in reversed(await payment_events(session, period)):
        yield {"at": event.at, "kind": event.kind, "charge_id": event.charge_id, "user_id": event.user_id,
               "credits": event.credits if event.kind == "purchase" else -event.credits,
               "stars": event.stars if event.kind == "purchase" else -event.stars}


def _aware(value: datetime) -> datetime:
    """The union's time column is typed by its first SELECT; never guess a zone for a naive one but UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
