"""Many concurrent reservations for one user, each in its own session: the balance never overdraws, and
every refusal is a row of its own."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import LedgerEntry, Request
from db.repo.records import Budget, Reservation
from db.repo.users import ledger_mismatches
from tests.db.support import balance, make_user, reserve

Sessions = async_sessionmaker[AsyncSession]


async def _reserve_in_own_session(sessions: Sessions, update_id: int, budget: Budget) -> Reservation:
    async with sessions() as s, s.begin():
        return await reserve(s, 1, 1, update_id=update_id, budget=budget)


async def test_fifty_concurrent_reservations_with_five_credits_serve_exactly_five(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
    results = await asyncio.gather(*[_reserve_in_own_session(sessions, i, Budget()) for i in range(50)])
    assert Counter(r.status for r in results) == {"ok": 5, "insufficient": 45}
    assert sorted(r.balance for r in results if r.ok) == [0, 1, 2, 3, 4]
    async with sessions() as s:
        assert await balance(s, 1) == 0
        assert await s.scalar(select(func.count()).where(Request.status == "running")) == 5
        assert await s.scalar(select(func.count()).where(Request.status == "refused",
                                                         Request.credits_charged == 0)) == 45
        assert await s.scalar(select(func.count()).where(LedgerEntry.reason == "charge")) == 5
        assert await ledger_mismatches(s) == []


async def test_concurrent_reservations_respect_the_day_budget(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=100)
    results = await asyncio.gather(*[_reserve_in_own_session(sessions, i, Budget(per_day=7)) for i in range(30)])
    assert Counter(r.status for r in results) == {"ok": 7, "budget_day": 23}
    async with sessions() as s:
        assert await balance(s, 1) == 93


async def test_the_same_update_delivered_concurrently_is_charged_once(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
    results = await asyncio.gather(*[_reserve_in_own_session(sessions, 77, Budget()) for _ in range(20)])
    assert Counter(r.status for r in results) == {"ok": 1, "duplicate": 19}
    assert {r.request_id for r in results} == {next(r.request_id for r in results if r.ok)}
    async with sessions() as s:
        assert await balance(s, 1) == 9
