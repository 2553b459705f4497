"""Hypothesis: whatever the order of a payment's update arriving (once, again, as a new update), the Star
transactions' reconciliation running, both at once, and restarts (whose start-up run reconciles too), the
payment is granted exactly once and its user told "payment received" exactly once.

Each example is a new user paying once in the same app; a last reconciliation stands for the runs to come.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.i18n import Translate
from tests.bot.core_harness import CoreHarness
from tests.bot.stars_support import PACKS, buy, ledger

STEPS = ("update", "same_update_again", "reconcile", "update_racing_reconcile", "restart")
DONE = Translate("en")("buy.done", credits=100, balance=110)
users = itertools.count(5001)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path_factory.mktemp("reconcile"), credit_packs=PACKS) as harness:
        yield harness


async def _run(h: CoreHarness, user: int, charge_id: str, step: str, sent: list[int]) -> None:
    if step == "update":
        sent.append(h.tg.stars.deliver_payment(charge_id))
        await h.feed(sent[-1])
    elif step == "same_update_again" and sent:
        await h.feed(sent[-1])
    elif step == "reconcile":
        await h.live.stars.reconcile()
    elif step == "update_racing_reconcile":
        sent.append(h.tg.stars.deliver_payment(charge_id))
        await asyncio.gather(h.feed(sent[-1]), h.live.stars.reconcile())
    elif step == "restart":
        await h.boot()


@pytest.mark.asyncio(loop_scope="module")
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.sampled_from(STEPS), max_size=6))
async def test_any_interleaving_of_updates_and_reconciliation_grants_a_payment_once(
        h: CoreHarness, steps: list[str]) -> None:
    user = next(users)
    charge = h.tg.stars.charge_unseen(user, await buy(h, user))  # its update is up to the steps
    sent: list[int] = []
    for step in steps:
        await _run(h, user, charge.charge_id, step, sent)
    await h.live.stars.reconcile()
    assert h.credits(user) == 110
    assert ledger(h, user) == [(10, "free"), (100, "purchase")]
    assert [m.text for m in h.tg.messages(user)].count(DONE) == 1
