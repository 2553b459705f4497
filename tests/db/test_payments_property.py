"""Hypothesis: any interleaving of purchases, redeliveries (one after another, or racing from several
sessions as several fronts would), refunds, charges for requests and admin grants keeps every balance equal
to the sum of its ledger rows and never negative; a charge id is credited once and refunded once; a refund
takes back the purchase's credits, or all the user has left when that is less.

A plain model of the rules runs beside the database and must agree with it after every step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import make_engine, make_session_maker
from db.models import LedgerEntry, Payment, User
from db.repo.payments import record_purchase, record_refund
from db.repo.users import grant_credits, ledger_mismatches
from tests.db.conftest import FreshDb, examples
from tests.db.support import make_user, reserve

USERS = (1, 2, 3)
CHARGES = 6  # charge ids c0..c5: small, so redeliveries and refunds often meet a known one

purchase = st.tuples(st.just("purchase"), st.integers(0, CHARGES - 1), st.sampled_from(USERS), st.integers(0, 9))
race = st.tuples(st.just("race"), st.integers(0, CHARGES - 1), st.sampled_from(USERS), st.integers(2, 4))
refund = st.tuples(st.just("refund"), st.integers(0, CHARGES - 1))
charge = st.tuples(st.just("charge"), st.sampled_from(USERS), st.integers(1, 12))
grant = st.tuples(st.just("grant"), st.sampled_from(USERS), st.integers(-6, 6))
operations = st.lists(st.one_of(purchase, race, refund, charge, grant), max_size=30)

Sessions = async_sessionmaker[AsyncSession]


@dataclass
class Bought:
    user: int
    credits: int
    debited: int | None = None  # set once refunded


@dataclass
class Model:
    balances: dict[int, int] = field(default_factory=lambda: dict.fromkeys(USERS, 3))
    payments: dict[str, Bought] = field(default_factory=dict)
    update_id: int = 0


def _credits(n: int) -> int:
    return 0 if n == 0 else 10 * n  # 0: a payment whose payload did not verify


async def _buy(sessions: Sessions, charge_id: str, user: int, credits: int) -> bool:
    async with sessions() as s, s.begin():
        bought = await record_purchase(s, charge_id=charge_id, user_id=user, credits=credits, stars=1 + credits)
        return bought.new


async def _step(sessions: Sessions, model: Model, op: tuple[int | str, ...]) -> None:
    kind = op[0]
    if kind in ("purchase", "race"):
        n, user = int(op[1]), int(op[2])
        charge_id = f"c{n}"
        known = model.payments.get(charge_id)
        if known is not None:  # a redelivery names the same payer and pack as the first delivery
            user, credits = known.user, known.credits
        else:
            credits = _credits(int(op[3]) if kind == "purchase" else n)
        copies = int(op[3]) if kind == "race" else 1
        new = await asyncio.gather(*[_buy(sessions, charge_id, user, credits) for _ in range(copies)])
        assert sum(new) == (0 if known is not None else 1)
        if known is None:
            model.payments[charge_id] = Bought(user, credits)
            model.balances[user] += credits
    elif kind == "refund":
        charge_id = f"c{op[1]}"
        async with sessions() as s, s.begin():
            done = await record_refund(s, charge_id, by=9)
        known = model.payments.get(charge_id)
        assert (done is None) == (known is None)
        if done is not None and known is not None:
            assert done.new == (known.debited is None)
            if known.debited is None:
                known.debited = min(known.credits, model.balances[known.user])
                model.balances[known.user] -= known.debited
            assert done.payment.credits_debited == known.debited and done.balance == model.balances[known.user]
    elif kind == "charge":
        user, credits = int(op[1]), int(op[2])
        model.update_id += 1
        async with sessions() as s, s.begin():
            res = await reserve(s, user, credits, update_id=model.update_id)
        assert res.ok == (model.balances[user] >= credits)
        if res.ok:
            model.balances[user] -= credits
    else:
        user, delta = int(op[1]), int(op[2])
        async with sessions() as s, s.begin():
            new_balance = await grant_credits(s, user, delta, by=9)
        expected = model.balances[user] + delta
        assert new_balance == (expected if expected >= 0 else None)
        if expected >= 0:
            model.balances[user] = expected


async def _check(s: AsyncSession, model: Model) -> None:
    assert await ledger_mismatches(s) == []
    balances = {uid: credits for uid, credits in (await s.execute(select(User.id, User.credits))).all()}
    assert balances == model.balances and all(v >= 0 for v in balances.values())
    rows = (await s.execute(select(Payment.charge_id, Payment.id, Payment.credits, Payment.credits_debited))).all()
    assert {c: (cr, d) for c, _, cr, d in rows} == {
        c: (b.credits, b.debited or 0) for c, b in model.payments.items()}
    moves = (await s.execute(select(LedgerEntry.payment_id, LedgerEntry.reason, LedgerEntry.delta)
                             .where(LedgerEntry.payment_id.is_not(None)))).all()
    by_payment = {(pid, reason): delta for pid, reason, delta in moves}
    assert len(by_payment) == len(moves)  # at most one row per payment and reason
    for _, pid, credits, debited in rows:
        assert by_payment.get((pid, "purchase"), 0) == credits
        assert by_payment.get((pid, "purchase_refund"), 0) == -debited


async def _scenario(url: str, ops: list[tuple[int | str, ...]]) -> None:
    engine = make_engine(url)
    sessions = make_session_maker(engine)
    model = Model()
    try:
        async with sessions() as s, s.begin():
            for user in USERS:
                await make_user(s, user, credits=3)
        for op in ops:
            await _step(sessions, model, op)
            async with sessions() as s:
                await _check(s, model)
    finally:
        await engine.dispose()


def test_purchases_refunds_charges_and_redeliveries_keep_every_balance_equal_to_its_ledger(
    fresh_db: FreshDb,
) -> None:
    # @given inside, so the number of examples can depend on the backend (see tests/db/conftest.py)
    @settings(max_examples=examples(fresh_db.backend, 60), deadline=None)
    @given(ops=operations)
    def check(ops: list[tuple[int | str, ...]]) -> None:
        asyncio.run(_scenario(fresh_db.new(), ops))

    check()
