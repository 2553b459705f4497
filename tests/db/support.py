"""Small helpers shared by the db/ tests: users, full request lifecycles, and raw-row reads."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LedgerEntry, User
from db.repo.accounting import (
    AttemptRecord,
    Budget,
    Reservation,
    ServedRecord,
    close_failed,
    close_served,
    record_attempt,
    reserve_request,
)
from db.repo.users import upsert_user

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


async def make_user(session: AsyncSession, tg_id: int, credits: int = 0, **kwargs: object) -> None:
    await upsert_user(session, tg_id, username=f"u{tg_id}", free_credits=credits, **kwargs)  # type: ignore[arg-type]


async def reserve(
    session: AsyncSession, tg_id: int, credits: int = 1, *, update_id: int | None = None,
    budget: Budget = Budget(), now: datetime | None = None, category: str = "text",
    route_first: str | None = "alpha",
) -> Reservation:
    return await reserve_request(
        session, tg_id=tg_id, update_id=update_id, label="Fast chat", category=category, prompt="hello",
        credits=credits, budget=budget, chat_id=tg_id, route_first_provider=route_first, now=now,
    )


async def serve(
    session: AsyncSession, request_id: int, provider: str = "alpha", *, cost: int = 1000, latency: float = 500,
    category: str = "text", at: datetime | None = None,
) -> bool:
    at = at or datetime.now(UTC)
    await record_attempt(session, request_id, AttemptRecord(
        provider=provider, model="m", category=category, order=0, kind=None, http_status=200,
        latency_ms=latency, cost_micros=cost, started_at=at))
    return await close_served(session, request_id, ServedRecord(
        provider=provider, model="m", cost_micros=cost, latency_ms=latency, usage={"input_tokens": 3}))


async def fail(session: AsyncSession, request_id: int, kind: str = "unavailable") -> bool:
    return await close_failed(session, request_id, error_kind=kind, message="all providers failed")


async def balance(session: AsyncSession, tg_id: int) -> int:
    return int(await session.scalar(select(User.credits).where(User.id == tg_id)) or 0)


async def ledger_sum(session: AsyncSession, tg_id: int) -> int:
    total = await session.scalar(select(func.sum(LedgerEntry.delta)).where(LedgerEntry.user_id == tg_id))
    return int(total or 0)
