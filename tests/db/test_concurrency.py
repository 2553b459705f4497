"""Concurrent sessions on one user or one request: the balance never overdraws, every refusal is a row of
its own, a request is taken over, closed and refunded once.

The gathered tests race many sessions. The interleaved ones make the race certain: one session's
transition stays uncommitted while a second session's transition on the same row starts, and is seen to
wait for it (PostgreSQL: a row lock, as pg_stat_activity shows; SQLite: the database write lock); then
the first commits (or rolls back), and the second must decide on the row as the first left it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import LedgerEntry, Request
from db.periods import period_between
from db.repo.lifecycle import cancel_open, close_failed, close_served, orphans, take_over
from db.repo.records import AttemptRecord, Budget, Reservation, ServedRecord
from db.repo.stats import provider_stats
from db.repo.users import ledger_mismatches
from tests.db.support import OWNER, T0, balance, make_user, reserve

T = TypeVar("T")

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


async def _until_waiting(sessions: Sessions, backend: str, task: asyncio.Task[object]) -> None:
    """Return once `task` is blocked on a lock another session holds (it must not have finished)."""
    if backend == "postgres":
        async with sessions() as s:
            for _ in range(400):
                waiting = await s.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock'"))
                await s.rollback()  # the activity view is a snapshot per transaction: a new one per poll
                if waiting or task.done():
                    break
                await asyncio.sleep(0.025)
            assert waiting == 1, "the second transition never waited for the first one's lock"
    else:  # SQLite shows no lock waits: give the second writer time to reach the write lock
        await asyncio.sleep(0.3)
    assert not task.done(), "the second transition did not wait for the first one's uncommitted change"


async def _interleaved(
    sessions: Sessions, backend: str, first: Callable[[AsyncSession], Awaitable[object]],
    second: Callable[[AsyncSession], Awaitable[T]], *, commit: bool = True,
) -> T:
    """`first` runs and stays uncommitted; `second` starts in its own session and waits; then `first`
    commits (or rolls back) and `second`'s result comes back."""

    async def run_second() -> T:
        async with sessions() as s, s.begin():
            return await second(s)

    async with sessions() as s:
        await s.begin()
        await first(s)
        task = asyncio.create_task(run_second())
        try:
            await _until_waiting(sessions, backend, task)  # type: ignore[arg-type]
        finally:
            await (s.commit() if commit else s.rollback())
    return await task


@pytest.mark.parametrize("commit", [True, False])
async def test_a_charge_waits_for_an_uncommitted_charge_and_decides_on_its_outcome(
    sessions: Sessions, backend: str, commit: bool
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=1)
    second = await _interleaved(sessions, backend, lambda s: reserve(s, 1, 1, update_id=1),
                                lambda s: reserve(s, 1, 1, update_id=2), commit=commit)
    # committed: the one credit is gone, the second is refused; rolled back: the second gets it
    assert (second.status, second.balance) == (("insufficient", 0) if commit else ("ok", 0))
    async with sessions() as s:
        assert await balance(s, 1) == 0
        assert await s.scalar(select(func.count()).where(LedgerEntry.reason == "charge")) == 1
        assert await ledger_mismatches(s) == []


async def test_the_same_update_waits_for_an_uncommitted_reservation_and_is_a_duplicate(
    sessions: Sessions, backend: str
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
    second = await _interleaved(sessions, backend, lambda s: reserve(s, 1, 1, update_id=9),
                                lambda s: reserve(s, 1, 1, update_id=9))
    assert second.status == "duplicate" and second.request_id is not None
    async with sessions() as s:
        assert await balance(s, 1) == 4
        assert await s.scalar(select(func.count()).select_from(Request)) == 1


async def test_a_second_sweeper_waits_for_the_first_take_over_and_gets_nothing(
    sessions: Sessions, backend: str
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 2, lease_until=T0 - timedelta(minutes=1))).request_id
    async with sessions() as s:
        (orphan,) = await orphans(s, T0)
    lease = T0 + timedelta(minutes=5)
    taken = await _interleaved(sessions, backend, lambda s: take_over(s, orphan, "sweeper-1", lease),
                               lambda s: take_over(s, orphan, "sweeper-2", lease))
    assert not taken
    async with sessions() as s:
        assert (await s.execute(select(Request.owner).where(Request.id == rid))).scalar_one() == "sweeper-1"


async def test_a_cancel_waits_for_an_uncommitted_close_and_refunds_nothing_twice(
    sessions: Sessions, backend: str
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 3)).request_id
        assert rid is not None
    outcome = await _interleaved(sessions, backend,
                                 lambda s: close_failed(s, rid, OWNER, error_kind="unavailable"),
                                 lambda s: cancel_open(s, 1))
    assert (outcome.canceled, outcome.delivering) == ((), ())  # the close got there first and refunded
    async with sessions() as s:
        assert await balance(s, 1) == 5
        assert await s.scalar(select(func.count()).where(LedgerEntry.reason == "refund")) == 1
        assert await ledger_mismatches(s) == []


async def test_concurrent_closes_naming_providers_in_any_order_never_deadlock(sessions: Sessions) -> None:
    # Each close upserts the rollup rows of its attempts' providers, which PostgreSQL keeps locked until
    # commit: taken in the attempts' order, closes of opposite orders deadlocked and one was aborted
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=100)
        rids = [(await reserve(s, 1, 1, now=T0)).request_id for _ in range(30)]
    orders = (["alpha", "beta", "gamma"], ["gamma", "beta", "alpha"], ["beta", "alpha"])

    async def close(n: int, rid: int | None) -> None:
        assert rid is not None
        names = orders[n % len(orders)]
        attempts = [AttemptRecord(p, "m", "text", i, None if i == len(names) - 1 else "unavailable", 200, 10.0, 5,
                                  started_at=T0) for i, p in enumerate(names)]
        async with sessions() as s, s.begin():
            if n % 2:
                assert await close_served(s, rid, OWNER, ServedRecord(names[-1], "m", 5, 10.0), attempts)
            else:
                assert await close_failed(s, rid, OWNER, error_kind="unavailable", attempts=attempts)

    await asyncio.gather(*[close(n, rid) for n, rid in enumerate(rids)])
    async with sessions() as s:
        stats = {p.provider: p for p in await provider_stats(s, period_between(T0, T0 + timedelta(hours=1)))}
    assert {name: p.attempts for name, p in stats.items()} == {"alpha": 30, "beta": 30, "gamma": 20}
    assert sum(p.served for p in stats.values()) == 15
