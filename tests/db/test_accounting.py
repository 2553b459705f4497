"""Accounting: reserve, duplicates, served, failed with one refund, budgets, stale requests, resumable jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Attempt, LedgerEntry, Request
from db.repo.accounting import (
    AttemptRecord,
    Budget,
    ServedRecord,
    close_failed,
    close_served,
    list_resumable,
    mark_running,
    record_attempt,
    set_job,
    settle_stale,
)
from db.repo.users import ledger_mismatches
from tests.db.support import T0, balance, fail, make_user, reserve, serve

Sessions = async_sessionmaker[AsyncSession]


async def _ledger(s: AsyncSession, tg_id: int) -> list[tuple[int, str, int | None]]:
    rows = (await s.scalars(select(LedgerEntry).where(LedgerEntry.user_id == tg_id).order_by(LedgerEntry.id))).all()
    return [(r.delta, r.reason, r.request_id) for r in rows]


async def test_reserve_charges_once_and_a_redelivered_update_is_not_charged(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        first = await reserve(s, 1, 2, update_id=100)
        again = await reserve(s, 1, 2, update_id=100)
        assert (first.status, first.balance) == ("ok", 3)
        assert (again.status, again.request_id, again.balance) == ("duplicate", first.request_id, 3)
        assert await _ledger(s, 1) == [(5, "free", None), (-2, "charge", first.request_id)]
        request = await s.get(Request, first.request_id)
        assert request is not None
        assert (request.status, request.credits_charged, request.chat_id, request.update_id) == ("pending", 2, 1, 100)


async def test_insufficient_credits_charge_nothing_and_leave_no_request(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=1)
        refused = await reserve(s, 1, 2, update_id=5)
        assert (refused.status, refused.request_id, refused.balance) == ("insufficient", None, 1)
        assert (await s.scalars(select(Request))).all() == []
        assert await _ledger(s, 1) == [(1, "free", None)]
        assert (await reserve(s, 1, 1, update_id=6)).status == "ok"


async def test_served_stores_what_the_provider_layer_reported(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 1, route_first="alpha")).request_id
        assert rid is not None
        await mark_running(s, rid)
        await record_attempt(s, rid, AttemptRecord("alpha", "a-1", "text", 0, "rate_limited", 429, 12.4,
                                                   message="slow down" * 100))
        await record_attempt(s, rid, AttemptRecord("beta", "b-1", "text", 1, None, 200, 812.6, cost_micros=3210))
        served = ServedRecord("beta", "b-1", 3210, 830.2, usage={"input_tokens": 10, "output_tokens": 20},
                              prices={"text_in_per_1k": 0.15})
        assert await close_served(s, rid, served)
        assert not await close_served(s, rid, served)  # already closed
        assert not await fail(s, rid)  # and never refunded afterwards
        request = await s.get(Request, rid)
        attempts = (await s.scalars(select(Attempt).order_by(Attempt.position))).all()
    assert request is not None
    assert (request.status, request.provider, request.model, request.cost_micros, request.latency_ms) == (
        "served", "beta", "b-1", 3210, 830)
    assert request.fallback and request.route_first_provider == "alpha"
    assert request.usage == {"input_tokens": 10, "output_tokens": 20}
    assert request.price_snapshot == {"text_in_per_1k": 0.15}
    assert request.credits_refunded == 0 and request.finished_at is not None
    assert [(a.provider, a.kind, a.http_status, a.latency_ms) for a in attempts] == [
        ("alpha", "rate_limited", 429, 12), ("beta", None, 200, 813)]
    assert attempts[0].message is not None and len(attempts[0].message) == 300


@pytest.mark.parametrize(("route_first", "record_first", "expected"), [
    ("alpha", None, False), ("beta", None, True), (None, None, False), (None, "beta", True), ("beta", "alpha", False),
])
async def test_fallback_is_served_by_someone_else_than_the_routes_first(
    sessions: Sessions, route_first: str | None, record_first: str | None, expected: bool
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, route_first=route_first)).request_id
        assert rid is not None
        await close_served(s, rid, ServedRecord("alpha", "m", 0, 1.0, route_first_provider=record_first))
        request = await s.get(Request, rid)
        assert request is not None and request.fallback is expected


async def test_failure_refunds_exactly_once_as_a_ledger_row(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 3)).request_id
        assert rid is not None and await balance(s, 1) == 2
        assert await close_failed(s, rid, error_kind="unavailable", message="x" * 1000)
        assert not await close_failed(s, rid, error_kind="unavailable")
        assert not await close_served(s, rid, ServedRecord("alpha", "m", 1, 1.0))
        assert await balance(s, 1) == 5
        assert await _ledger(s, 1) == [(5, "free", None), (-3, "charge", rid), (3, "refund", rid)]
        request = await s.get(Request, rid)
        assert request is not None
        assert (request.status, request.error_kind, request.credits_refunded) == ("failed", "unavailable", 3)
        assert request.error_message is not None and len(request.error_message) == 300
        assert await ledger_mismatches(s) == []


async def test_cancel_without_refund_keeps_the_charge(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 2)).request_id
        assert rid is not None
        assert await close_failed(s, rid, error_kind="canceled", refund=False, canceled=True)
        request = await s.get(Request, rid)
        assert request is not None and (request.status, request.credits_refunded) == ("canceled", 0)
        assert await balance(s, 1) == 3


async def test_day_and_month_budgets_are_enforced_and_reset_with_the_local_calendar(sessions: Sessions) -> None:
    budget = Budget(per_day=3, per_month=5, tz="Asia/Tokyo")  # UTC+9: local days change at 15:00 UTC
    day1 = datetime(2024, 3, 10, 1, 0, tzinfo=UTC)
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=100)
        assert (await reserve(s, 1, 2, budget=budget, now=day1)).status == "ok"
        assert (await reserve(s, 1, 2, budget=budget, now=day1)).status == "budget_day"
        assert (await reserve(s, 1, 1, budget=budget, now=day1 + timedelta(hours=13))).status == "ok"
        # 15:00 UTC is midnight in Tokyo: a new day, but the month still has 2 of 5 left
        next_day = day1 + timedelta(hours=14)
        assert (await reserve(s, 1, 3, budget=budget, now=next_day)).status == "budget_month"
        assert (await reserve(s, 1, 2, budget=budget, now=next_day)).status == "ok"
        assert (await reserve(s, 1, 1, budget=budget, now=next_day)).status == "budget_month"
        assert (await reserve(s, 1, 1, budget=budget, now=datetime(2024, 3, 31, 15, tzinfo=UTC))).status == "ok"
        assert await balance(s, 1) == 100 - 2 - 1 - 2 - 1
        assert await ledger_mismatches(s) == []


async def test_a_refund_gives_the_budget_back(sessions: Sessions) -> None:
    budget = Budget(per_day=2)
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        rid = (await reserve(s, 1, 2, budget=budget, now=T0)).request_id
        assert rid is not None
        assert (await reserve(s, 1, 1, budget=budget, now=T0)).status == "budget_day"
        await close_failed(s, rid, error_kind="unavailable", now=T0)
        assert (await reserve(s, 1, 2, budget=budget, now=T0)).status == "ok"


async def test_budgets_zero_means_unlimited_and_insufficient_wins(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=3)
        assert (await reserve(s, 1, 3, budget=Budget(0, 0))).status == "ok"
        assert (await reserve(s, 1, 1, budget=Budget(per_day=1))).status == "insufficient"


async def test_settle_stale_fails_and_refunds_only_old_requests_without_a_job(sessions: Sessions) -> None:
    now = datetime.now(UTC)
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        old = (await reserve(s, 1, 2, now=now - timedelta(hours=2))).request_id
        old_job = (await reserve(s, 1, 2, now=now - timedelta(hours=2))).request_id
        young = (await reserve(s, 1, 2, now=now - timedelta(minutes=1))).request_id
        done = (await reserve(s, 1, 2, now=now - timedelta(hours=2))).request_id
        assert old and old_job and young and done
        await set_job(s, old_job, "fal", "fal-ai/video", "job-123")
        await serve(s, done)
        assert await settle_stale(s, timedelta(minutes=30)) == 1
        assert await settle_stale(s, timedelta(minutes=30)) == 0
        statuses = {r.id: (r.status, r.error_kind) for r in (await s.scalars(select(Request))).all()}
        assert statuses == {old: ("failed", "stale"), old_job: ("running", None), young: ("pending", None),
                            done: ("served", None)}
        assert await balance(s, 1) == 10 - 6


async def test_list_resumable_gives_everything_needed_to_poll_again(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        rid = (await reserve(s, 1, 4, category="video", now=T0)).request_id
        other = (await reserve(s, 1, 1)).request_id
        assert rid and other
        await mark_running(s, other)  # running but no job yet: nothing to resume
        await set_job(s, rid, "replicate", "minimax/video-01", "pred-9")
        jobs = await list_resumable(s)
        assert [(j.request_id, j.tg_id, j.chat_id, j.category, j.label, j.prompt, j.provider, j.model, j.job_id,
                 j.credits, j.created_at) for j in jobs] == [
            (rid, 1, 1, "video", "Fast chat", "hello", "replicate", "minimax/video-01", "pred-9", 4, T0)]
        await serve(s, rid, "replicate", category="video")
        assert await list_resumable(s) == []


async def test_long_prompts_are_trimmed_and_naive_times_refused(sessions: Sessions) -> None:
    from db.repo.accounting import reserve_request

    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        res = await reserve_request(s, tg_id=1, update_id=None, label="L", category="text", prompt="p" * 5000,
                                    credits=1)
        request = await s.get(Request, res.request_id)
        assert request is not None and len(request.prompt) == 1000
        with pytest.raises(ValueError, match="naive"):
            await reserve(s, 1, 1, now=datetime(2024, 1, 1))
        with pytest.raises(ValueError):
            await reserve(s, 1, -1)
