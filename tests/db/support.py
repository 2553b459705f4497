"""Small helpers shared by the db/ tests: users, full request lifecycles, and raw-row reads."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LedgerEntry, User
from db.repo.lifecycle import close_failed, close_served, record_attempts, reserve_request
from db.repo.records import AttemptRecord, Budget, Closed, Reservation, ServedRecord
from db.repo.users import upsert_user

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
OWNER = "bot-1"  # the process that reserves, works on and closes a request in these tests
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # a lease that never runs out while a test runs


async def make_user(session: AsyncSession, tg_id: int, credits: int = 0, **kwargs: object) -> None:
    await upsert_user(session, tg_id, username=f"u{tg_id}", free_credits=credits, **kwargs)  # type: ignore[arg-type]


async def reserve(
    session: AsyncSession, tg_id: int, credits: int = 1, *, update_id: int | None = None,
    budget: Budget = Budget(), now: datetime | None = None, category: str = "text",
    route_first: str | None = "alpha", owner: str = OWNER, lease_until: datetime = FAR, start: bool = True,
) -> Reservation:
    return await reserve_request(
        session, owner=owner, lease_until=lease_until, tg_id=tg_id, update_id=update_id, label="Fast chat",
        category=category, prompt="hello", credits=credits, budget=budget, chat_id=tg_id,
        route_first_provider=route_first, now=now, start=start,
    )


async def serve(
    session: AsyncSession, request_id: int, provider: str = "alpha", *, cost: int = 1000, latency: float = 500,
    category: str = "text", at: datetime | None = None, owner: str = OWNER,
) -> bool:
    at = at or datetime.now(UTC)
    await record_attempts(session, request_id, [AttemptRecord(
        provider=provider, model="m", category=category, order=0, kind=None, http_status=200,
        latency_ms=latency, cost_micros=cost, started_at=at)])
    return await close_served(session, request_id, owner, ServedRecord(
        provider=provider, model="m", cost_micros=cost, latency_ms=latency, usage={"input_tokens": 3}))


async def fail(session: AsyncSession, request_id: int, kind: str = "unavailable", *, owner: str = OWNER
               ) -> Closed | None:
    return await close_failed(session, request_id, owner, error_kind=kind, message="all providers failed")


async def balance(session: AsyncSession, tg_id: int) -> int:
    return int(await session.scalar(select(User.credits).where(User.id == tg_id)) or 0)


async def ledger_sum(session: AsyncSession, tg_id: int) -> int:
    total = await session.scalar(select(func.sum(LedgerEntry.delta)).where(LedgerEntry.user_id == tg_id))
    return int(total or 0)
