"""Hypothesis: any sequence of grants, requests, refusals, successes, failures (refunded, or kept because part
of the answer was delivered) and duplicates keeps every balance equal to the sum of its ledger rows, never
negative, and never refunds more than was charged.

A plain model of the rules runs beside the database and must agree with it after every step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import make_engine, make_session_maker
from db.models import LedgerEntry, Request, User
from db.repo.lifecycle import close_failed, close_served, mark_delivered
from db.repo.records import Budget, ServedRecord
from db.repo.users import grant_credits, ledger_mismatches
from tests.db.conftest import FreshDb
from tests.db.support import OWNER, make_user, reserve

USERS = (1, 2, 3)

grant = st.tuples(st.just("grant"), st.sampled_from(USERS), st.integers(-5, 8))
request = st.tuples(st.just("request"), st.sampled_from(USERS), st.integers(0, 4), st.integers(0, 6))
serve = st.tuples(st.just("serve"), st.integers(0, 30))
fail = st.tuples(st.just("fail"), st.integers(0, 30), st.booleans())  # True: nothing was delivered, refund
operations = st.lists(st.one_of(grant, request, serve, fail), max_size=40)


@dataclass
class Model:
    balances: dict[int, int] = field(default_factory=lambda: dict.fromkeys(USERS, 2))
    open: dict[int, tuple[int, int]] = field(default_factory=dict)  # request id -> (user, credits)
    requests: list[int] = field(default_factory=list)  # every row, refused ones too
    by_update: dict[int, int] = field(default_factory=dict)


async def _step(s: AsyncSession, model: Model, op: tuple[object, ...]) -> None:
    if op[0] == "grant":
        _, user, credits = op
        assert isinstance(user, int) and isinstance(credits, int)
        new = await grant_credits(s, user, credits, by=9)
        expected = model.balances[user] + credits
        assert new == (expected if expected >= 0 else None)
        if expected >= 0:
            model.balances[user] = expected
    elif op[0] == "request":
        _, user, credits, update_id = op
        assert isinstance(user, int) and isinstance(credits, int) and isinstance(update_id, int)
        res = await reserve(s, user, credits, update_id=update_id, budget=Budget())
        if update_id in model.by_update:
            assert (res.status, res.request_id) == ("duplicate", model.by_update[update_id])
        else:
            assert res.request_id is not None
            assert res.status == ("ok" if model.balances[user] >= credits else "insufficient")
            if res.ok:
                model.balances[user] -= credits
                model.open[res.request_id] = (user, credits)
            model.requests.append(res.request_id)
            model.by_update[update_id] = res.request_id
        assert res.balance == model.balances[user]
    elif model.requests:
        rid = model.requests[int(op[1]) % len(model.requests)]  # type: ignore[call-overload]
        if op[0] == "serve":
            closed = await close_served(s, rid, OWNER, ServedRecord("alpha", "m", 10, 5.0))
        else:
            refund = bool(op[2])
            if not refund:  # part of the answer reached the user: the charge is kept
                assert await mark_delivered(s, rid, OWNER) == (rid in model.open)
            failed = await close_failed(s, rid, OWNER, error_kind="unavailable")
            closed = failed is not None
            if failed is not None:
                user, credits = model.open[rid]
                assert failed.refunded == (credits if refund else 0)
                model.balances[user] += failed.refunded
        assert closed == (rid in model.open)
        model.open.pop(rid, None)


async def _check(s: AsyncSession, model: Model) -> None:
    assert await ledger_mismatches(s) == []
    balances = {uid: credits for uid, credits in (await s.execute(select(User.id, User.credits))).all()}
    assert balances == model.balances
    assert all(v >= 0 for v in balances.values())
    refunds = (await s.execute(
        select(Request.id, Request.credits_charged, Request.credits_refunded,
               func.coalesce(func.sum(LedgerEntry.delta), 0))
        .outerjoin(LedgerEntry, (LedgerEntry.request_id == Request.id) & (LedgerEntry.reason == "refund"))
        .group_by(Request.id)
    )).all()
    for _rid, charged, refunded, ledger_refund in refunds:
        assert 0 <= refunded <= charged and ledger_refund == refunded


async def _scenario(url: str, ops: list[tuple[object, ...]]) -> None:
    engine = make_engine(url)
    sessions = make_session_maker(engine)
    model = Model()
    try:
        async with sessions() as s, s.begin():
            for user in USERS:
                await make_user(s, user, credits=2)
        for op in ops:
            async with sessions() as s, s.begin():  # one transaction per step, as the bot does
                await _step(s, model, op)
            async with sessions() as s:
                await _check(s, model)
    finally:
        await engine.dispose()


@settings(max_examples=40, deadline=None)
@given(ops=operations)
def test_balances_always_equal_their_ledger_and_refunds_never_exceed_charges(
    fresh_db: FreshDb, ops: list[tuple[object, ...]]
) -> None:
    asyncio.run(_scenario(fresh_db.new(), ops))
