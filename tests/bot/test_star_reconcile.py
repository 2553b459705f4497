"""Reconciling with Telegram's list of Star transactions through the real app and the fake Bot API: a payment
whose update was lost is granted once (at start-up, or by a later run) and its user told; a payment granted
normally is never granted again; the stored position moves on, so a run reads only what is new; a refund
whose notice was lost is recorded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.i18n import Translate
from bot.services.invoices import InvoiceSigner
from bot.services.star_ledger import FEED, PAGE, StarLedger
from tests.bot.core_harness import CoreHarness, eventually
from tests.bot.faults import Crash
from tests.bot.stars_support import PACKS, buy, checkout, ledger, purchase

USER, OTHER = 2002, 2003
EN = Translate("en")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path, credit_packs=PACKS) as harness:
        yield harness


def position(h: CoreHarness) -> int:
    rows = h.rows("SELECT position FROM feed_positions WHERE name = ?", FEED)
    return int(rows[0]["position"]) if rows else 0


def said(h: CoreHarness, user: int) -> str | None:
    """The last message to the user as the bot sent it (HTML and all)."""
    return h.tg.messages(user)[-1].text


def offsets(h: CoreHarness) -> list[int]:
    return [offset for offset, _ in h.tg.stars.reads]


async def test_a_payment_whose_update_was_lost_is_granted_once_and_its_user_told(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    lost = h.tg.stars.charge_unseen(USER, invoice)  # paid; the process died before the grant committed
    assert h.credits(USER) == 10

    done = await h.live.stars.reconcile()
    assert (done.granted, done.read, done.position) == ([lost.charge_id], 1, 1)
    assert h.credits(USER) == 110 and ledger(h, USER) == [(10, "free"), (100, "purchase")]
    assert said(h, USER) == EN("buy.done", credits=100, balance=110)  # as the normal path says it
    told = len(h.tg.messages(USER))

    again = await h.live.stars.reconcile()
    assert (again.granted, again.read) == ([], 0)
    assert h.credits(USER) == 110 and len(h.tg.messages(USER)) == told
    [row] = h.rows("SELECT charge_id, credits, stars, status FROM payments")
    assert tuple(row) == (lost.charge_id, 100, 50, "paid")


async def test_the_start_up_run_grants_a_payment_lost_in_a_crash_and_the_late_update_only_tells(
        h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    lost = h.tg.stars.charge_unseen(USER, invoice)
    await h.boot()  # the restart after the crash
    assert h.credits(USER) == 110 and ledger(h, USER) == [(10, "free"), (100, "purchase")]
    assert position(h) == 1

    await h.feed(h.tg.stars.deliver_payment(lost.charge_id))  # Telegram did send it after all
    assert h.credits(USER) == 110
    assert said(h, USER) == EN("buy.already", credits=100, balance=110)


async def test_a_crash_before_the_grant_commits_is_made_good_by_the_next_start(h: CoreHarness) -> None:
    paying = await checkout(h, h.tg.stars.pay(USER, await buy(h, USER)))
    assert paying.charge is not None

    died: list[str] = []

    def die(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("INSERT INTO payments"):
            died.append(statement)
            raise Crash("the process died before the grant committed")

    engine = h.live.engine.sync_engine
    event.listen(engine, "before_cursor_execute", die)
    handling = asyncio.create_task(h.feed(paying.charge.update_ids[0]))  # fetched, so confirmed to Telegram
    await eventually(lambda: died)
    handling.cancel()
    with contextlib.suppress(BaseException):
        await handling
    event.remove(engine, "before_cursor_execute", die)
    assert h.credits(USER) == 10 and h.rows("SELECT * FROM payments") == []

    await h.boot()  # Telegram does not send the update again; the start-up reconciliation finds the payment
    assert h.credits(USER) == 110 and ledger(h, USER) == [(10, "free"), (100, "purchase")]
    assert said(h, USER) == EN("buy.done", credits=100, balance=110)


async def test_a_payment_granted_normally_is_not_granted_again(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    told = len(h.tg.messages(USER))
    done = await h.live.stars.reconcile()
    assert (done.granted, done.read) == ([], 1)
    assert h.credits(USER) == 110 and ledger(h, USER) == [(10, "free"), (100, "purchase")]
    assert len(h.tg.messages(USER)) == told  # nothing said about a payment already answered
    assert [r["charge_id"] for r in h.rows("SELECT charge_id FROM payments")] == [charge.charge_id]


async def test_the_position_moves_on_so_each_run_reads_only_new_transactions(h: CoreHarness) -> None:
    await purchase(h, USER)
    first = await h.live.stars.reconcile()
    assert first.position == position(h) == 1

    invoice = await buy(h, OTHER)
    late = h.tg.stars.charge_unseen(OTHER, invoice)
    h.tg.stars.reads.clear()
    second = await h.live.stars.reconcile()
    assert offsets(h) == [1]  # from the stored position, not from the start
    assert (second.read, second.granted, second.position) == (1, [late.charge_id], 2)
    assert h.credits(OTHER) == 110 and h.credits(USER) == 110


async def test_a_long_list_is_read_page_by_page_until_a_short_page(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    for _ in range(PAGE + 5):
        h.tg.stars.charge_unseen(USER, invoice)
    h.tg.stars.reads.clear()
    done = await h.live.stars.reconcile()
    assert offsets(h) == [0, PAGE]
    assert (done.read, len(done.granted), done.position) == (PAGE + 5, PAGE + 5, PAGE + 5)
    assert h.credits(USER) == 10 + 100 * (PAGE + 5)

    h.tg.stars.reads.clear()
    assert (await h.live.stars.reconcile()).read == 0 and offsets(h) == [PAGE + 5]


async def test_a_refund_whose_notice_was_lost_is_recorded_once_and_its_user_told(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    await h.live.stars.reconcile()
    h.tg.stars.refund_unseen(charge.charge_id)  # refunded by Telegram; the refunded_payment update lost

    done = await h.live.stars.reconcile()
    assert (done.refunded, done.granted) == ([charge.charge_id], [])
    assert h.credits(USER) == 10
    assert ledger(h, USER) == [(10, "free"), (100, "purchase"), (-100, "purchase_refund")]
    [row] = h.rows("SELECT status, credits_debited, refunded_by FROM payments")
    assert tuple(row) == ("refunded", 100, None)
    assert said(h, USER) == EN("buy.refunded", stars=50, credits=100, balance=10)
    assert (await h.live.stars.reconcile()).refunded == []


async def test_a_payment_and_its_refund_both_lost_are_granted_then_taken_back(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    lost = h.tg.stars.charge_unseen(USER, invoice)
    h.tg.stars.refund_unseen(lost.charge_id)
    done = await h.live.stars.reconcile()
    assert (done.granted, done.refunded) == ([lost.charge_id], [lost.charge_id])
    assert h.credits(USER) == 10
    assert ledger(h, USER) == [(10, "free"), (100, "purchase"), (-100, "purchase_refund")]


async def test_a_refund_made_by_the_admin_is_not_recorded_twice(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    await h.say(1001, f"/refund {charge.charge_id}")
    assert h.credits(USER) == 10
    done = await h.live.stars.reconcile()
    assert done.refunded == []
    assert ledger(h, USER) == [(10, "free"), (100, "purchase"), (-100, "purchase_refund")]


async def test_a_payer_the_database_never_saw_is_added_and_granted(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    h.tg.remember_user(OTHER, "Stranger", "ru", None, None)
    # an invoice forwarded to another user is still signed for USER: kept, with no credits, and said so
    stranger = h.tg.stars.charge_unseen(OTHER, invoice)
    done = await h.live.stars.reconcile()
    assert done.granted == [stranger.charge_id]
    assert h.credits(OTHER) == 10  # the free credits a first update would have given, nothing bought
    assert said(h, OTHER) == Translate("ru")("buy.unverified", charge=stranger.charge_id)


async def test_a_bot_that_cannot_reach_telegram_starts_anyway_and_reads_later(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    lost = h.tg.stars.charge_unseen(USER, invoice)
    h.tg.fail_next(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"},
                   path_contains="getStarTransactions")
    await h.boot()  # the start-up run fails: logged, and the bot starts
    assert h.credits(USER) == 10 and position(h) == 0
    assert (await h.live.stars.scheduled()) is None  # the start-up run's claim still holds
    assert (await h.live.stars.reconcile()).granted == [lost.charge_id]


async def test_reconciliation_is_scheduled_and_can_be_turned_off(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, credit_packs=PACKS, stars_reconcile_minutes=5) as h:
        job = h.live.scheduler.get_job("stars_reconcile")
        assert job is not None and job.trigger.interval.total_seconds() == 300
        assert h.tg.stars.reads == [(0, PAGE)]  # the start-up run
    (tmp_path / "off").mkdir()
    async with CoreHarness.start(tmp_path / "off", credit_packs=PACKS, stars_reconcile_minutes=0) as h:
        assert h.live.scheduler.get_job("stars_reconcile") is None
        assert h.tg.stars.reads == []


async def test_of_two_fronts_sharing_their_claims_only_the_first_reads(h: CoreHarness) -> None:
    app = h.live
    other_front = StarLedger(app.bot, app.sessions, app.writes, InvoiceSigner.for_settings(h.settings), h.settings,
                             app.core.shared.claims)  # in Redis when distributed; here this process's own
    h.tg.stars.reads.clear()
    assert await other_front.scheduled() is None  # the start-up run's claim holds
    assert h.tg.stars.reads == []
