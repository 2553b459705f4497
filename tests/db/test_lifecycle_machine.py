"""Hypothesis drives the life of requests as a state machine, against one SQLite copy per example.

First every user reserves one request (running); then rules, in any order, on any request, by its owner
or by any of four owners:
    reserve          a random user, 0..5 credits, a random day/month budget, maybe a re-delivered update id,
                     started (running) or left reserved for a worker
    refuse_busy      a busy refusal, before any charge
    start            a worker takes a reserved request
    set_job          the owner remembers a provider job
    mark_delivering  the owner is about to send the answer
    mark_delivered   part of the answer reached the user
    close_served     the owner closes it served
    close_failed     the owner closes it failed, or canceled (maybe saying it knows part was delivered)
    cancel_open      the user's /cancel
    renew            an owner renews the leases it holds (offering every request id)
    sweep            the lease runs out (or its owner is known gone), a sweeper takes the request over (a
                     second sweeper with the same snapshot gets nothing), then maybe closes it failed: the
                     sweeper's path
    grant            an admin grants (or takes back) credits

A plain model beside the database predicts every answer (status, refund, True/False) and every balance.

Invariants, after every step:
    1. every balance equals the sum of its ledger rows (ledger_mismatches is empty), and the model's balance;
    2. no balance is negative;
    3. every request is in exactly one state, the model's: open (reserved, running: no finished_at) or
       terminal (served, failed, canceled, refused: finished_at set, no lease);
    4. a terminal request never changes again, in any column;
    5. credits_refunded is credits_charged if the request ended failed or canceled with delivered_at empty,
       else 0; its ledger rows are exactly one charge (if it charged anything) and one refund (if refunded);
    6. a refused request charged nothing and has no ledger row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import make_engine, make_session_maker
from db.models import OPEN_STATUSES, TERMINAL_STATUSES, LedgerEntry, User, requests_table
from db.repo.lifecycle import (
    cancel_open,
    close_failed,
    close_served,
    mark_delivered,
    mark_delivering,
    orphans,
    refuse,
    renew_leases,
    set_job,
    start,
    take_over,
)
from db.repo.records import Budget, ServedRecord
from db.repo.users import grant_credits, ledger_mismatches
from tests.db.conftest import FreshDb, examples
from tests.db.support import T0, make_user, reserve

USERS = (1, 2, 3)
START_CREDITS = 8
BOTS = ("bot-1", "bot-2")
SWEEPERS = ("sweeper-1", "sweeper-2")
OWNERS = (*BOTS, *SWEEPERS)
FIRST_LEASE = T0 + timedelta(minutes=1)  # every lease runs past T0: nothing is an orphan at T0
T = TypeVar("T")

ITS_OWNER = "its owner"  # resolved to whoever holds the request now, so owners' transitions often succeed
users = st.sampled_from(USERS)
owners = st.sampled_from((ITS_OWNER, ITS_OWNER, *OWNERS))
budgets = st.just(Budget()) | st.builds(Budget, per_day=st.integers(0, 8), per_month=st.integers(0, 12))
update_ids = st.none() | st.integers(0, 6)


@dataclass
class Expected:
    """What the model believes of one request."""

    user: int
    charged: int
    status: str
    owner: str | None
    lease: timedelta | None  # after T0
    delivering: bool = False
    delivered: bool = False
    refunded: int = 0

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


class LifecycleMachine(RuleBasedStateMachine):
    fresh: ClassVar[FreshDb]  # set by the test: hands out a migrated SQLite copy per example
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.engine = make_engine(self.fresh.new())
        self.sessions = make_session_maker(self.engine)
        self.balances = dict.fromkeys(USERS, START_CREDITS)
        self.spent = dict.fromkeys(USERS, 0)  # net credits charged today (every reservation is made at T0)
        self.expected: dict[int, Expected] = {}
        self.by_update: dict[int, int] = {}
        self.terminal_rows: dict[int, tuple[Any, ...]] = {}

        async def users(s: AsyncSession) -> None:
            for user in USERS:
                await make_user(s, user, credits=START_CREDITS)

        self._write(users)

    def teardown(self) -> None:
        self.runner.run(self.engine.dispose())
        self.runner.close()

    def _write(self, step: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """One transaction, as the bot makes one per step."""

        async def run() -> T:
            async with self.sessions() as s, s.begin():
                return await step(s)

        return self.runner.run(run())

    def _who(self, rid: int, owner: str) -> str:
        return (self.expected[rid].owner or BOTS[0]) if owner == ITS_OWNER else owner

    def _owns(self, rid: int, owner: str) -> bool:
        want = self.expected[rid]
        return want.open and want.owner == owner

    def _refund(self, rid: int, status: str) -> int:
        """The model's close: failed or canceled, refunded if and only if nothing was delivered."""
        want = self.expected[rid]
        want.status, want.lease = status, None
        want.refunded = 0 if want.delivered else want.charged
        self.balances[want.user] += want.refunded
        self.spent[want.user] -= want.refunded
        return want.refunded

    # --- rules ---------------------------------------------------------------------------------

    @initialize(target=requests, credits=st.lists(st.integers(0, 5), min_size=3, max_size=3))
    def every_user_has_a_running_request(self, credits: list[int]) -> Any:
        return multiple(*[self.reserve(user, n, Budget(), None, BOTS[0], True) for user, n in zip(USERS, credits,
                                                                                                   strict=True)])

    @rule(target=requests, user=users, credits=st.integers(0, 5), budget=budgets, update_id=update_ids,
          owner=st.sampled_from(BOTS), started=st.booleans())
    def reserve(self, user: int, credits: int, budget: Budget, update_id: int | None, owner: str,
                started: bool) -> Any:
        res = self._write(lambda s: reserve(s, user, credits, update_id=update_id, budget=budget, now=T0,
                                            owner=owner, lease_until=FIRST_LEASE, start=started))
        if update_id is not None and update_id in self.by_update:
            assert (res.status, res.request_id, res.balance) == ("duplicate", self.by_update[update_id],
                                                                 self.balances[user])
            return multiple()
        spent = self.spent[user] + credits
        if self.balances[user] < credits:
            status = "insufficient"
        elif budget.per_day and spent > budget.per_day:
            status = "budget_day"
        elif budget.per_month and spent > budget.per_month:
            status = "budget_month"
        else:
            status = "ok"
        assert res.status == status and res.request_id is not None
        if res.ok:
            self.balances[user] -= credits
            self.spent[user] += credits
            self.expected[res.request_id] = Expected(user, credits, "running" if started else "reserved", owner,
                                                     FIRST_LEASE - T0)
        else:
            self.expected[res.request_id] = Expected(user, 0, "refused", None, None)
        if update_id is not None:
            self.by_update[update_id] = res.request_id
        assert res.balance == self.balances[user]
        return res.request_id

    @rule(target=requests, user=users, update_id=update_ids)
    def refuse_busy(self, user: int, update_id: int | None) -> Any:
        rid = self._write(lambda s: refuse(s, tg_id=user, update_id=update_id, label="L", category="text",
                                           prompt="busy", reason="busy", now=T0))
        if update_id is not None and update_id in self.by_update:
            assert rid is None
            return multiple()
        assert rid is not None
        self.expected[rid] = Expected(user, 0, "refused", None, None)
        if update_id is not None:
            self.by_update[update_id] = rid
        return rid

    @rule(rid=requests, owner=owners)
    def start(self, rid: int, owner: str) -> None:
        want = self.expected[rid]
        lease = T0 + timedelta(minutes=2)
        assert self._write(lambda s: start(s, rid, owner, lease)) == (want.status == "reserved")
        if want.status == "reserved":
            want.status, want.owner, want.lease = "running", owner, lease - T0

    @rule(rid=requests, owner=owners)
    def set_job(self, rid: int, owner: str) -> None:
        owner = self._who(rid, owner)
        owns = self._owns(rid, owner)
        assert self._write(lambda s: set_job(s, rid, owner, "fal", "fal-ai/video", f"job-{rid}")) == owns
        if owns:
            self.expected[rid].status = "running"

    @rule(rid=requests, owner=owners)
    def mark_delivering(self, rid: int, owner: str) -> None:
        owner = self._who(rid, owner)
        owns = self._owns(rid, owner)
        assert self._write(lambda s: mark_delivering(s, rid, owner, T0)) == owns
        self.expected[rid].delivering |= owns

    @rule(rid=requests, owner=owners)
    def mark_delivered(self, rid: int, owner: str) -> None:
        owner = self._who(rid, owner)
        owns = self._owns(rid, owner)
        assert self._write(lambda s: mark_delivered(s, rid, owner, T0)) == owns
        self.expected[rid].delivered |= owns

    @rule(rid=requests, owner=owners)
    def close_served(self, rid: int, owner: str) -> None:
        owner = self._who(rid, owner)
        owns = self._owns(rid, owner)
        served = ServedRecord("alpha", "m", 100, 5.0, finished_at=T0)
        assert self._write(lambda s: close_served(s, rid, owner, served)) == owns
        if owns:
            want = self.expected[rid]
            want.status, want.lease, want.delivered = "served", None, True

    @rule(rid=requests, owner=owners, canceled=st.booleans(), knows_delivered=st.booleans())
    def close_failed(self, rid: int, owner: str, canceled: bool, knows_delivered: bool) -> None:
        owner = self._who(rid, owner)
        owns = self._owns(rid, owner)
        closed = self._write(lambda s: close_failed(s, rid, owner, error_kind="unavailable", canceled=canceled,
                                                    delivered=knows_delivered))
        if not owns:
            assert closed is None
            return
        # the owner knows part of the answer went out, though its mark_delivered was never written
        self.expected[rid].delivered |= knows_delivered
        status = "canceled" if canceled else "failed"
        assert closed is not None and (closed.request_id, closed.status) == (rid, status)
        assert closed.refunded == self._refund(rid, status)

    @rule(user=users)
    def cancel_open(self, user: int) -> None:
        mine = sorted(rid for rid, want in self.expected.items() if want.user == user and want.open)
        # a cancel refunds only before the answer starts to go out, and never once part of it arrived
        delivering = [rid for rid in mine if self.expected[rid].delivering or self.expected[rid].delivered]
        outcome = self._write(lambda s: cancel_open(s, user))
        assert sorted(outcome.delivering) == delivering
        expected = [(rid, self._refund(rid, "canceled")) for rid in mine if rid not in delivering]
        assert sorted((c.request_id, c.refunded) for c in outcome.canceled) == expected
        assert all(c.status == "canceled" for c in outcome.canceled)

    @rule(owner=st.sampled_from(OWNERS), minutes=st.integers(3, 9))
    def renew(self, owner: str, minutes: int) -> None:
        held = [rid for rid, want in self.expected.items() if want.open and want.owner == owner]
        every_id = sorted(self.expected)
        lease = T0 + timedelta(minutes=minutes)
        assert self._write(lambda s: renew_leases(s, owner, every_id, lease)) == len(held)
        for rid in held:
            self.expected[rid].lease = lease - T0

    @rule(rid=requests, sweeper=st.sampled_from(SWEEPERS), owner_gone=st.booleans(), then_close=st.booleans())
    def sweep(self, rid: int, sweeper: str, owner_gone: bool, then_close: bool) -> None:
        want = self.expected[rid]
        lease = T0 + (want.lease or timedelta())

        async def path(s: AsyncSession) -> tuple[bool, bool, object]:
            assert await orphans(s, T0) == []  # every lease runs past T0
            if owner_gone:  # its process is known dead: no need to wait for the lease
                found = await orphans(s, T0, [want.owner or "nobody"])
            else:  # time passes until this request's lease ran out
                found = await orphans(s, lease + timedelta(seconds=1))
            found = [o for o in found if o.request_id == rid]
            if not found:
                return False, False, None
            (orphan,) = found
            assert (orphan.owner, orphan.lease_until, orphan.tg_id) == (want.owner, lease, want.user)
            new_lease = lease + timedelta(minutes=1)
            taken = await take_over(s, orphan, sweeper, new_lease)
            rival = SWEEPERS[1] if sweeper == SWEEPERS[0] else SWEEPERS[0]
            again = await take_over(s, orphan, rival, new_lease)  # the same snapshot: the lease moved on
            closed = await close_failed(s, rid, sweeper, error_kind="stale") if then_close and taken else None
            return taken, again, closed

        taken, again, closed = self._write(path)
        assert taken == want.open and not again
        if not taken:
            return
        want.owner = sweeper
        want.status = "running"
        want.lease = lease + timedelta(minutes=1) - T0
        if then_close:
            assert closed is not None and getattr(closed, "refunded", None) == self._refund(rid, "failed")

    @rule(user=users, credits=st.integers(-5, 8))
    def grant(self, user: int, credits: int) -> None:
        new = self._write(lambda s: grant_credits(s, user, credits, by=9))
        enough = self.balances[user] + credits >= 0
        assert new == (self.balances[user] + credits if enough else None)
        if enough:
            self.balances[user] += credits

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def the_database_agrees_with_the_rules(self) -> None:
        self.runner.run(self._check())

    async def _check(self) -> None:
        async with self.sessions() as s:
            # 1, 2: balances are their ledger, the model's, never negative
            assert await ledger_mismatches(s) == []
            balances = dict((await s.execute(select(User.id, User.credits))).all())
            assert balances == self.balances
            assert min(balances.values()) >= 0
            ledger: dict[tuple[int, str], int] = {
                (int(rid or 0), reason): int(total) for rid, reason, total in (await s.execute(
                    select(LedgerEntry.request_id, LedgerEntry.reason, func.sum(LedgerEntry.delta))
                    .where(LedgerEntry.request_id.is_not(None))
                    .group_by(LedgerEntry.request_id, LedgerEntry.reason))).all()}
            rows = (await s.execute(select(requests_table))).all()
        assert {row.id for row in rows} == set(self.expected)
        for row in rows:
            want = self.expected[row.id]
            # 3: exactly one state, the model's
            assert row.status == want.status
            assert (row.status in OPEN_STATUSES) != (row.status in TERMINAL_STATUSES)
            if row.status in OPEN_STATUSES:
                assert row.finished_at is None and row.owner == want.owner
                assert row.lease_until == T0 + (want.lease or timedelta())
            else:
                assert row.finished_at is not None and row.lease_until is None
                # 4: terminal once, then never changed
                assert self.terminal_rows.setdefault(row.id, tuple(row)) == tuple(row)
            assert (row.delivering_at is not None, row.delivered_at is not None) == (
                want.delivering, want.delivered)
            # 5: the refund rule, and the ledger rows that carry it
            ended_undelivered = row.status in ("failed", "canceled") and row.delivered_at is None
            assert row.credits_refunded == (row.credits_charged if ended_undelivered else 0) == want.refunded
            assert row.credits_charged == want.charged
            expected_ledger = {(row.id, "charge"): -row.credits_charged} if row.credits_charged else {}
            if row.credits_refunded:
                expected_ledger[(row.id, "refund")] = row.credits_refunded
            assert {key: v for key, v in ledger.items() if key[0] == row.id} == expected_ledger
            # 6: a refusal charged nothing
            if row.status == "refused":
                assert row.credits_charged == 0 and expected_ledger == {}


def test_any_sequence_of_transitions_keeps_balances_refunds_and_states_right(fresh_db: FreshDb) -> None:
    class Machine(LifecycleMachine):
        fresh = fresh_db

    run_state_machine_as_test(Machine, settings=settings(max_examples=examples(fresh_db.backend, 20),
                                                         stateful_step_count=50, deadline=None))
