"""Purchases with Telegram Stars and their refunds, on every backend: credited once per charge id however
often and from however many sessions it arrives, refunded once, a balance taken to zero and never below,
every move a ledger row; revenue per period."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import LedgerEntry
from db.periods import period_between
from db.repo.payments import Purchase, find_payment, record_purchase, record_refund, user_payments
from db.repo.revenue import Revenue, export_payment_rows, payment_events, revenue
from db.repo.users import grant_credits, ledger_mismatches
from tests.db.support import T0, balance, make_user, reserve

Sessions = async_sessionmaker[AsyncSession]


async def _buy(sessions: Sessions, charge: str, user: int = 1, credits: int = 100, stars: int = 50,
               at: object = T0) -> Purchase:
    async with sessions() as s, s.begin():
        return await record_purchase(s, charge_id=charge, user_id=user, credits=credits, stars=stars,
                                     payload="cp1.x", now=at)  # type: ignore[arg-type]


async def _ledger(sessions: Sessions, user: int = 1) -> list[tuple[int, str]]:
    async with sessions() as s:
        rows = await s.execute(select(LedgerEntry.delta, LedgerEntry.reason).where(LedgerEntry.user_id == user)
                               .order_by(LedgerEntry.id))
        return [(int(d), str(r)) for d, r in rows.all()]


async def test_a_purchase_grants_its_credits_once_as_one_ledger_row(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
    first = await _buy(sessions, "charge-1")
    again = await _buy(sessions, "charge-1")
    assert (first.new, first.balance, first.payment.credits, first.payment.stars) == (True, 105, 100, 50)
    assert (again.new, again.balance, again.payment.id) == (False, 105, first.payment.id)
    assert await _ledger(sessions) == [(5, "free"), (100, "purchase")]


async def test_the_same_charge_from_twenty_sessions_at_once_is_credited_once(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1)
    results = await asyncio.gather(*[_buy(sessions, "charge-race") for _ in range(20)])
    assert Counter(r.new for r in results) == {True: 1, False: 19}
    assert {r.balance for r in results} == {100}
    async with sessions() as s:
        assert await balance(s, 1) == 100 and await ledger_mismatches(s) == []


async def test_a_purchase_ledger_row_cannot_be_written_twice_for_one_payment(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1)
    bought = await _buy(sessions, "charge-1")
    with pytest.raises(IntegrityError):
        async with sessions() as s, s.begin():
            s.add(LedgerEntry(user_id=1, delta=100, reason="purchase", payment_id=bought.payment.id, created_at=T0))


async def test_a_refund_takes_the_credits_back_once(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=5)
    await _buy(sessions, "charge-1")
    async with sessions() as s, s.begin():
        refund = await record_refund(s, "charge-1", by=1001, now=T0 + timedelta(days=1))
    async with sessions() as s, s.begin():
        again = await record_refund(s, "charge-1", by=1001)
        unknown = await record_refund(s, "no-such-charge")
    assert refund is not None and again is not None and unknown is None
    assert (refund.new, refund.balance, refund.payment.credits_debited, refund.payment.status) == \
        (True, 5, 100, "refunded")
    assert refund.payment.refunded_by == 1001 and refund.payment.refunded_at == T0 + timedelta(days=1)
    assert (again.new, again.balance, again.payment.credits_debited) == (False, 5, 100)
    assert await _ledger(sessions) == [(5, "free"), (100, "purchase"), (-100, "purchase_refund")]


async def test_a_refund_of_spent_credits_takes_the_balance_to_zero_never_below(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1)
    await _buy(sessions, "charge-1")
    async with sessions() as s, s.begin():
        assert (await reserve(s, 1, 70)).ok
    async with sessions() as s, s.begin():
        refund = await record_refund(s, "charge-1", by=1001)
    assert refund is not None and (refund.balance, refund.payment.credits_debited) == (0, 30)
    async with sessions() as s:
        assert await balance(s, 1) == 0 and await ledger_mismatches(s) == []


async def test_a_payment_whose_payload_did_not_verify_is_kept_with_no_credits(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=3)
    bought = await _buy(sessions, "charge-odd", credits=0, stars=50)
    async with sessions() as s, s.begin():
        refund = await record_refund(s, "charge-odd")
    assert (bought.new, bought.balance) == (True, 3)
    assert refund is not None and (refund.new, refund.balance, refund.payment.credits_debited) == (True, 3, 0)
    assert await _ledger(sessions) == [(3, "free")]


async def test_revenue_counts_purchases_when_paid_and_refunds_when_refunded(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1)
        await make_user(s, 2)
    await _buy(sessions, "a", 1, 100, 50, T0)
    await _buy(sessions, "b", 2, 550, 250, T0 + timedelta(hours=2))
    await _buy(sessions, "c", 1, 100, 50, T0 - timedelta(days=3))  # before the period
    async with sessions() as s, s.begin():
        await grant_credits(s, 1, -120)  # user 1 spent most of it (an admin took it back, as good)
        await record_refund(s, "c", by=9, now=T0 + timedelta(hours=3))  # refunded within the period
    period = period_between(T0, T0 + timedelta(days=1))
    async with sessions() as s:
        found = await revenue(s, period)
        events = await payment_events(s, period)
        rows = [row async for row in export_payment_rows(s, period)]
        mine = await user_payments(s, 1)
        assert (await find_payment(s, "c")) is not None
    assert found == Revenue(purchases=2, stars_paid=300, credits_sold=650, refunds=1, stars_refunded=50,
                            credits_debited=80)
    assert found.stars_net == 250
    assert [(e.kind, e.charge_id, e.credits, e.stars) for e in events] == [
        ("refund", "c", 80, 50), ("purchase", "b", 550, 250), ("purchase", "a", 100, 50)]
    assert events[0].at == T0 + timedelta(hours=3)
    assert [(r["kind"], r["credits"], r["stars"]) for r in rows] == [
        ("purchase", 100, 50), ("purchase", 550, 250), ("refund", -80, -50)]
    assert [p.charge_id for p in mine] == ["a", "c"]
    async with sessions() as s:
        assert await revenue(s, period_between(T0 + timedelta(days=5), T0 + timedelta(days=6))) == Revenue()
