"""The life of a request: reserve (or refuse), budgets, ownership and leases, delivery, served, failed or
canceled with exactly one refund, orphans and their take-over."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Attempt, LedgerEntry, Request, requests_table
from db.repo.lifecycle import (
    cancel_open,
    close_failed,
    close_served,
    mark_delivered,
    mark_delivering,
    open_owners,
    orphans,
    record_attempts,
    refuse,
    renew_leases,
    reserve_request,
    set_job,
    start,
    take_over,
)
from db.repo.records import AttemptRecord, Budget, Closed, Orphan, ServedRecord
from db.repo.rollups import rebuild_rollups
from db.repo.users import ledger_mismatches
from db.rollup_tables import DAILY, HOURLY, request_rollups
from tests.db.support import FAR, OWNER, T0, balance, fail, make_user, reserve, serve

Sessions = async_sessionmaker[AsyncSession]
OTHER = "bot-2"
LIVE = T0 + timedelta(minutes=1)  # a lease still running at T0
LAPSED = T0 - timedelta(minutes=1)  # a lease that ran out before T0


async def _ledger(s: AsyncSession, tg_id: int) -> list[tuple[int, str, int | None]]:
    rows = (await s.scalars(select(LedgerEntry).where(LedgerEntry.user_id == tg_id).order_by(LedgerEntry.id))).all()
    return [(r.delta, r.reason, r.request_id) for r in rows]


async def _request(s: AsyncSession, request_id: int | None) -> Request:
    assert request_id is not None
    request = await s.get(Request, request_id, populate_existing=True)
    assert request is not None
    return request


async def _raw(s: AsyncSession, request_id: int) -> tuple[Any, ...]:
    """Every column of the row, to see that a refused transition changed nothing at all."""
    return tuple((await s.execute(select(requests_table).where(requests_table.c.id == request_id))).one())


async def _rollup_counts(s: AsyncSession, grain: int = HOURLY) -> tuple[int, int]:
    """(requests, refused) summed over the request rollups of one grain."""
    c = request_rollups.c
    row = (await s.execute(select(func.sum(c.requests), func.sum(c.refused)).where(c.grain == grain))).one()
    return int(row[0] or 0), int(row[1] or 0)


def _closed(closed: Closed | None) -> tuple[int, str, int] | None:
    """What a transition reports: (request id, status, credits given back)."""
    return None if closed is None else (closed.request_id, closed.status, closed.refunded)


async def _refunds(s: AsyncSession, request_id: int) -> list[int]:
    return list((await s.scalars(select(LedgerEntry.delta).where(
        LedgerEntry.request_id == request_id, LedgerEntry.reason == "refund"))).all())


# --- reserve and refuse ----------------------------------------------------------------------------

async def test_a_reservation_charges_once_and_a_redelivered_update_is_not_charged(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        first = await reserve(s, 1, 2, update_id=100, lease_until=LIVE)
        again = await reserve(s, 1, 2, update_id=100, owner=OTHER)
        assert (first.status, first.balance) == ("ok", 3)
        assert (again.status, again.request_id, again.balance) == ("duplicate", first.request_id, 3)
        assert await _ledger(s, 1) == [(5, "free", None), (-2, "charge", first.request_id)]
        request = await _request(s, first.request_id)
        assert (request.status, request.credits_charged, request.chat_id, request.update_id) == ("running", 2, 1, 100)
        assert (request.owner, request.lease_until) == (OWNER, LIVE)


async def test_a_reservation_for_a_worker_waits_reserved_until_start_hands_it_the_lease(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 2, start=False)).request_id
        assert rid is not None and (await _request(s, rid)).status == "reserved"
        assert await start(s, rid, OTHER, LIVE)
        assert not await start(s, rid, OWNER, FAR)  # already running: the second worker gets nothing
        request = await _request(s, rid)
        assert (request.status, request.owner, request.lease_until) == ("running", OTHER, LIVE)


@pytest.mark.parametrize(("credits", "budget", "reason"), [
    (9, Budget(), "insufficient"),
    (2, Budget(per_day=1), "budget_day"),
    (2, Budget(per_month=1), "budget_month"),
])
async def test_a_refused_reservation_leaves_a_refused_row_with_its_reason_and_no_charge(
    sessions: Sessions, credits: int, budget: Budget, reason: str
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        refused = await reserve(s, 1, credits, update_id=7, budget=budget, now=T0)
        assert (refused.status, refused.balance, refused.ok) == (reason, 5, False)
        request = await _request(s, refused.request_id)
        assert (request.status, request.error_kind, request.credits_charged, request.credits_refunded) == (
            "refused", reason, 0, 0)
        assert (request.owner, request.lease_until, request.finished_at) == (None, None, T0)
        assert await _ledger(s, 1) == [(5, "free", None)]
        assert await balance(s, 1) == 5
        assert await _rollup_counts(s, HOURLY) == (0, 1)
        assert await _rollup_counts(s, DAILY) == (0, 1)
        # the refused row is terminal: nothing closes, cancels, or delivers it afterwards
        assert await fail(s, request.id) is None
        assert (await cancel_open(s, 1)).canceled == ()
        assert not await mark_delivering(s, request.id, OWNER)
        # a re-delivery of the same update is a duplicate of the refusal, not a second try
        again = await reserve(s, 1, 1, update_id=7)
        assert (again.status, again.request_id) == ("duplicate", request.id)
        await rebuild_rollups(s)
        assert await _rollup_counts(s, HOURLY) == (0, 1)
        assert await ledger_mismatches(s) == []


async def test_refuse_writes_a_busy_row_and_a_duplicate_update_id_writes_nothing(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        busy = await refuse(s, tg_id=1, update_id=50, label="Fast chat", category="text", prompt="p" * 5000,
                            reason="busy", chat_id=1, now=T0)
        assert busy is not None
        request = await _request(s, busy)
        assert (request.status, request.error_kind, request.credits_charged, request.finished_at) == (
            "refused", "busy", 0, T0)
        assert (request.chat_id, request.update_id, len(request.prompt)) == (1, 50, 1000)
        assert await _rollup_counts(s) == (0, 1)
        charged = (await reserve(s, 1, 1, update_id=51)).request_id
        assert await refuse(s, tg_id=1, update_id=50, label="L", category="text", prompt="", reason="busy") is None
        assert await refuse(s, tg_id=1, update_id=51, label="L", category="text", prompt="", reason="busy") is None
        assert await s.scalar(select(func.count()).select_from(Request)) == 2
        assert await _rollup_counts(s) == (0, 1)
        assert (await _request(s, charged)).status == "running"
        assert await _ledger(s, 1) == [(5, "free", None), (-1, "charge", charged)]


async def test_a_refusal_is_counted_apart_from_the_requests_that_ran(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=1)
        ran = (await reserve(s, 1, 1, now=T0)).request_id
        assert ran is not None and await serve(s, ran)
        assert (await reserve(s, 1, 1, now=T0)).status == "insufficient"
        await refuse(s, tg_id=1, update_id=None, label="L", category="text", prompt="", reason="busy", now=T0)
        assert await _rollup_counts(s, HOURLY) == (1, 2)
        assert await _rollup_counts(s, DAILY) == (1, 2)


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
        assert _closed(await close_failed(s, rid, OWNER, error_kind="unavailable", now=T0)) == (rid, "failed", 2)
        assert (await reserve(s, 1, 2, budget=budget, now=T0)).status == "ok"


async def test_budgets_zero_means_unlimited_and_insufficient_wins(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=3)
        assert (await reserve(s, 1, 3, budget=Budget(0, 0))).status == "ok"
        assert (await reserve(s, 1, 1, budget=Budget(per_day=1))).status == "insufficient"


async def test_long_prompts_are_trimmed_and_naive_times_refused(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        res = await reserve_request(s, owner=OWNER, lease_until=FAR, tg_id=1, update_id=None, label="L",
                                    category="text", prompt="p" * 5000, credits=1)
        assert len((await _request(s, res.request_id)).prompt) == 1000
        with pytest.raises(ValueError, match="naive"):
            await reserve(s, 1, 1, now=datetime(2024, 1, 1))
        with pytest.raises(ValueError):
            await reserve(s, 1, -1)


# --- served, failed, delivered ---------------------------------------------------------------------

async def test_served_stores_what_the_provider_layer_reported(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 1, route_first="alpha", start=False)).request_id
        assert rid is not None and await start(s, rid, OWNER, FAR)
        await record_attempts(s, rid, [AttemptRecord("alpha", "a-1", "text", 0, "rate_limited", 429, 12.4,
                                                     message="slow down" * 100)])
        await record_attempts(s, rid, [AttemptRecord("beta", "b-1", "text", 1, None, 200, 812.6, cost_micros=3210)])
        served = ServedRecord("beta", "b-1", 3210, 830.2, usage={"input_tokens": 10, "output_tokens": 20},
                              prices={"text_in_per_1k": 0.15}, finished_at=T0)
        assert await close_served(s, rid, OWNER, served)
        assert not await close_served(s, rid, OWNER, served)  # already closed
        assert await fail(s, rid) is None  # and never refunded afterwards
        request = await _request(s, rid)
        attempts = (await s.scalars(select(Attempt).order_by(Attempt.position))).all()
        assert await balance(s, 1) == 4
    assert (request.status, request.provider, request.model, request.cost_micros, request.latency_ms) == (
        "served", "beta", "b-1", 3210, 830)
    assert request.fallback and request.route_first_provider == "alpha"
    assert request.usage == {"input_tokens": 10, "output_tokens": 20}
    assert request.price_snapshot == {"text_in_per_1k": 0.15}
    assert request.credits_refunded == 0 and request.finished_at == T0
    assert (request.delivered_at, request.lease_until) == (T0, None)  # served means it reached the user
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
        assert await close_served(s, rid, OWNER, ServedRecord("alpha", "m", 0, 1.0, route_first_provider=record_first))
        assert (await _request(s, rid)).fallback is expected


async def test_a_failure_refunds_exactly_once_as_a_ledger_row(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 3)).request_id
        assert rid is not None and await balance(s, 1) == 2
        closed = await close_failed(s, rid, OWNER, error_kind="unavailable", message="x" * 1000)
        assert _closed(closed) == (rid, "failed", 3)
        assert await close_failed(s, rid, OWNER, error_kind="unavailable") is None
        assert not await close_served(s, rid, OWNER, ServedRecord("alpha", "m", 1, 1.0))
        assert await balance(s, 1) == 5
        assert await _ledger(s, 1) == [(5, "free", None), (-3, "charge", rid), (3, "refund", rid)]
        request = await _request(s, rid)
        assert (request.status, request.error_kind, request.credits_refunded) == ("failed", "unavailable", 3)
        assert request.error_message is not None and len(request.error_message) == 300
        assert await ledger_mismatches(s) == []


@pytest.mark.parametrize(("marks", "knows_delivered", "refunded"), [
    ((), False, 3),
    (("delivering",), False, 3),  # about to send, but nothing reached the user: still refunded
    (("delivered",), False, 0),
    (("delivering", "delivered"), False, 0),
    (("delivering",), True, 0),  # it went out, but writing mark_delivered down failed: the owner says so
])
async def test_close_failed_refunds_if_and_only_if_nothing_was_delivered(
    sessions: Sessions, marks: tuple[str, ...], knows_delivered: bool, refunded: int
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 3)).request_id
        assert rid is not None
        for mark in marks:
            assert await (mark_delivering if mark == "delivering" else mark_delivered)(s, rid, OWNER, T0)
        closed = await close_failed(s, rid, OWNER, error_kind="unavailable", canceled=True, delivered=knows_delivered,
                                    now=T0 + timedelta(seconds=5))
        assert _closed(closed) == (rid, "canceled", refunded)
        request = await _request(s, rid)
        assert (request.status, request.credits_charged, request.credits_refunded) == ("canceled", 3, refunded)
        assert (request.delivered_at is None) == (refunded > 0)
        if "delivered" in marks:
            assert request.delivered_at == T0  # the first mark stays
        assert await balance(s, 1) == 2 + refunded
        assert await _refunds(s, rid) == ([refunded] if refunded else [])
        assert await ledger_mismatches(s) == []


async def test_delivery_marks_are_set_once_and_keep_their_first_time(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 1)).request_id
        assert rid is not None
        assert await mark_delivering(s, rid, OWNER, T0)
        assert await mark_delivering(s, rid, OWNER, T0 + timedelta(seconds=5))
        assert await mark_delivered(s, rid, OWNER, T0 + timedelta(seconds=1))
        assert await mark_delivered(s, rid, OWNER, T0 + timedelta(seconds=9))
        request = await _request(s, rid)
        assert (request.delivering_at, request.delivered_at) == (T0, T0 + timedelta(seconds=1))


# --- ownership --------------------------------------------------------------------------------------

Transition = Callable[[AsyncSession, int, str], Awaitable[object]]
TRANSITIONS: dict[str, Transition] = {
    "close_served": lambda s, rid, owner: close_served(s, rid, owner, ServedRecord("alpha", "m", 5, 1.0)),
    "close_failed": lambda s, rid, owner: close_failed(s, rid, owner, error_kind="unavailable"),
    "close_failed canceled": lambda s, rid, owner: close_failed(s, rid, owner, error_kind="canceled", canceled=True),
    "set_job": lambda s, rid, owner: set_job(s, rid, owner, "fal", "fal-ai/video", "job-1"),
    "mark_delivering": lambda s, rid, owner: mark_delivering(s, rid, owner, T0),
    "mark_delivered": lambda s, rid, owner: mark_delivered(s, rid, owner, T0),
}


@pytest.mark.parametrize("transition", list(TRANSITIONS))
async def test_an_owners_transition_does_nothing_when_another_owner_holds_the_request(
    sessions: Sessions, transition: str
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 2, lease_until=LAPSED)).request_id
        assert rid is not None
        (orphan,) = await orphans(s, T0)
        assert await take_over(s, orphan, OTHER, LIVE)
        before, ledger = await _raw(s, rid), await _ledger(s, 1)
        assert not await TRANSITIONS[transition](s, rid, OWNER)  # the old owner, whose lease ran out
        assert not await TRANSITIONS[transition](s, rid, "a-stranger")
        assert await _raw(s, rid) == before
        assert await _ledger(s, 1) == ledger and await balance(s, 1) == 3
        assert await TRANSITIONS[transition](s, rid, OTHER)  # the one that holds it may


@pytest.mark.parametrize("closing", ["served", "failed", "canceled by the user"])
@pytest.mark.parametrize("transition", list(TRANSITIONS))
async def test_an_owners_transition_does_nothing_once_the_request_is_closed(
    sessions: Sessions, transition: str, closing: str
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 2)).request_id
        assert rid is not None
        if closing == "served":
            assert await serve(s, rid)
        elif closing == "failed":
            assert await fail(s, rid) is not None
        else:
            assert len((await cancel_open(s, 1)).canceled) == 1
        before, ledger, credits = await _raw(s, rid), await _ledger(s, 1), await balance(s, 1)
        assert not await TRANSITIONS[transition](s, rid, OWNER)
        assert await _raw(s, rid) == before
        assert await _ledger(s, 1) == ledger and await balance(s, 1) == credits
        assert await ledger_mismatches(s) == []


# --- cancel -----------------------------------------------------------------------------------------

async def test_cancel_open_refunds_every_open_request_not_delivering_and_reports_the_delivering_ones(
    sessions: Sessions
) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=20)
        await make_user(s, 2, credits=20)
        running = (await reserve(s, 1, 1)).request_id
        reserved = (await reserve(s, 1, 2, start=False)).request_id
        elsewhere = (await reserve(s, 1, 3, owner=OTHER)).request_id  # another process works on it
        delivering = (await reserve(s, 1, 4)).request_id
        served = (await reserve(s, 1, 5)).request_id
        someone_else = (await reserve(s, 2, 6)).request_id
        assert running and reserved and elsewhere and delivering and served and someone_else
        assert await mark_delivering(s, delivering, OWNER, T0)
        assert await serve(s, served)
        untouched = {rid: await _raw(s, rid) for rid in (delivering, served, someone_else)}
        outcome = await cancel_open(s, 1, now=T0)
        assert sorted((c.request_id, c.status, c.refunded) for c in outcome.canceled) == [
            (running, "canceled", 1), (reserved, "canceled", 2), (elsewhere, "canceled", 3)]
        assert (outcome.refunded, outcome.delivering) == (6, (delivering,))
        for rid in (running, reserved, elsewhere):
            request = await _request(s, rid)
            assert (request.status, request.error_kind, request.finished_at, request.lease_until) == (
                "canceled", "canceled", T0, None)
            assert request.credits_refunded == request.credits_charged
        assert {rid: await _raw(s, rid) for rid in untouched} == untouched
        assert await balance(s, 1) == 20 - 4 - 5
        assert await balance(s, 2) == 20 - 6
        # the delivering request is still its owner's to finish
        assert await close_served(s, delivering, OWNER, ServedRecord("alpha", "m", 1, 1.0))
        assert await ledger_mismatches(s) == []


async def test_cancel_open_with_nothing_open_does_nothing(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        outcome = await cancel_open(s, 1)
        assert (outcome.canceled, outcome.delivering, outcome.refunded) == ((), (), 0)
        assert await cancel_open(s, 404) == outcome


Step = Callable[[AsyncSession, int], Awaitable[object]]
STEPS: dict[str, Step] = {
    "close_failed": lambda s, rid: close_failed(s, rid, OWNER, error_kind="unavailable"),
    "close_failed by the taker": lambda s, rid: close_failed(s, rid, OTHER, error_kind="stale"),
    "cancel_open": lambda s, rid: cancel_open(s, 1),
    "close_served": lambda s, rid: close_served(s, rid, OWNER, ServedRecord("alpha", "m", 1, 1.0)),
}


@pytest.mark.parametrize(("first", "second"), [
    ("close_failed", "close_failed"), ("close_failed", "cancel_open"), ("cancel_open", "cancel_open"),
    ("cancel_open", "close_failed"), ("close_served", "close_failed"), ("close_served", "cancel_open"),
    ("close_failed", "close_failed by the taker"), ("cancel_open", "close_failed by the taker"),
])
async def test_a_second_close_or_cancel_refunds_nothing(sessions: Sessions, first: str, second: str) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
        rid = (await reserve(s, 1, 3, lease_until=LAPSED)).request_id
        assert rid is not None
        await STEPS[first](s, rid)
        after_first = await balance(s, 1), await _raw(s, rid)
        if second.endswith("by the taker"):  # the sweeper read the orphan before the first close
            stale = Orphan(rid, 1, 1, "text", "Fast chat", "hello", OWNER, LAPSED, None, None, None, 3, None, T0)
            assert not await take_over(s, stale, OTHER, LIVE)
        await STEPS[second](s, rid)
        assert (await balance(s, 1), await _raw(s, rid)) == after_first
        assert await _refunds(s, rid) == ([] if first == "close_served" else [3])
        assert await ledger_mismatches(s) == []


# --- leases and orphans -----------------------------------------------------------------------------

async def test_renew_leases_extends_only_the_callers_own_open_requests(sessions: Sessions) -> None:
    later = T0 + timedelta(minutes=10)
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=20)
        mine = [(await reserve(s, 1, 1, lease_until=LAPSED)).request_id for _ in range(2)]
        waiting = (await reserve(s, 1, 1, lease_until=LAPSED, start=False)).request_id
        closed = (await reserve(s, 1, 1, lease_until=LAPSED)).request_id
        theirs = (await reserve(s, 1, 1, owner=OTHER, lease_until=LAPSED)).request_id
        assert all(mine) and waiting and closed and theirs
        assert await fail(s, closed) is not None
        ids = [rid for rid in (*mine, waiting, closed, theirs) if rid is not None]
        assert await renew_leases(s, OWNER, ids, later) == 3
        leases = {rid: (await _request(s, rid)).lease_until for rid in ids}
        assert leases == {mine[0]: later, mine[1]: later, waiting: later, closed: None, theirs: LAPSED}
        assert await renew_leases(s, OWNER, [], later) == 0
        assert await renew_leases(s, "a-stranger", ids, later) == 0


async def test_orphans_lists_expired_leases_and_gone_owners_but_not_live_ones(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=20)
        lapsed = (await reserve(s, 1, 1, lease_until=LAPSED)).request_id
        lapsed_waiting = (await reserve(s, 1, 1, lease_until=LAPSED, start=False)).request_id
        live = (await reserve(s, 1, 1, lease_until=LIVE)).request_id
        gone = (await reserve(s, 1, 1, owner="dead-bot", lease_until=LIVE)).request_id
        on_the_edge = (await reserve(s, 1, 1, lease_until=T0)).request_id  # runs out at T0, not before
        closed = (await reserve(s, 1, 1, lease_until=LAPSED)).request_id
        assert lapsed and lapsed_waiting and live and gone and on_the_edge and closed
        assert await serve(s, closed)
        assert (await reserve(s, 1, 99)).status == "insufficient"  # a refusal is no orphan either
        assert [o.request_id for o in await orphans(s, T0)] == [lapsed, lapsed_waiting]
        assert [o.request_id for o in await orphans(s, T0, ["dead-bot"])] == [lapsed, lapsed_waiting, gone]
        assert [o.request_id for o in await orphans(s, T0 + timedelta(seconds=1))] == [
            lapsed, lapsed_waiting, on_the_edge]
        assert sorted(await open_owners(s)) == [OWNER, "dead-bot"]


async def test_orphans_give_everything_needed_to_resume_a_provider_job(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        rid = (await reserve(s, 1, 4, category="video", now=T0 - timedelta(minutes=5), lease_until=LAPSED)).request_id
        assert rid is not None
        assert await set_job(s, rid, OWNER, "replicate", "minimax/video-01", "pred-9")
        assert await mark_delivered(s, rid, OWNER, T0 - timedelta(minutes=2))
        assert await orphans(s, T0) == [Orphan(
            request_id=rid, tg_id=1, chat_id=1, category="video", label="Fast chat", prompt="hello", owner=OWNER,
            lease_until=LAPSED, job_provider="replicate", job_model="minimax/video-01", job_id="pred-9", credits=4,
            delivered_at=T0 - timedelta(minutes=2), created_at=T0 - timedelta(minutes=5))]


async def test_an_orphan_asked_in_a_forum_topic_says_which(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        for chat_id, thread_id in [(-100_5, 7), (-100_5, None), (1, None)]:
            await reserve_request(s, owner=OWNER, lease_until=LAPSED, tg_id=1, update_id=None, label="Fast chat",
                                  category="video", prompt="a cat", credits=1, chat_id=chat_id, thread_id=thread_id)
        assert [(o.chat_id, o.thread_id) for o in await orphans(s, T0)] == [(-100_5, 7), (-100_5, None), (1, None)]


async def _take_over_in_own_session(sessions: Sessions, orphan: Orphan, owner: str) -> bool:
    async with sessions() as s, s.begin():
        return await take_over(s, orphan, owner, LIVE)


async def test_take_over_succeeds_once_when_two_sweepers_race_for_the_same_orphan(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        rid = (await reserve(s, 1, 2, lease_until=LAPSED)).request_id
    async with sessions() as s:
        (orphan,) = await orphans(s, T0)
    results = await asyncio.gather(*[_take_over_in_own_session(sessions, orphan, f"sweeper-{n}") for n in range(2)])
    assert sorted(results) == [False, True]
    winner = f"sweeper-{results.index(True)}"
    loser = f"sweeper-{results.index(False)}"
    # sequentially, with the same snapshot: the lease has moved on, so nobody takes it again
    assert not await _take_over_in_own_session(sessions, orphan, loser)
    async with sessions() as s, s.begin():
        assert rid is not None
        request = await _request(s, rid)
        assert (request.owner, request.lease_until, request.status) == (winner, LIVE, "running")
        assert await orphans(s, T0) == []
        assert await close_failed(s, rid, loser, error_kind="stale") is None
        assert await close_failed(s, rid, OWNER, error_kind="stale") is None
        assert _closed(await close_failed(s, rid, winner, error_kind="stale")) == (rid, "failed", 2)
        assert await balance(s, 1) == 10


async def test_a_renewed_lease_cannot_be_taken_over_with_an_older_snapshot(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=10)
        rid = (await reserve(s, 1, 2, lease_until=LAPSED)).request_id
        assert rid is not None
        (orphan,) = await orphans(s, T0)
        assert await renew_leases(s, OWNER, [rid], LIVE) == 1  # the owner was only slow, not gone
        assert not await take_over(s, orphan, OTHER, LIVE)
        assert (await _request(s, rid)).owner == OWNER
