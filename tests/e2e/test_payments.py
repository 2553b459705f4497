"""Buying credits with Telegram Stars end to end, on the shared bot: /buy, the invoice, the pre-checkout
query answered within Telegram's ten seconds, the payment delivered twice (the same update again, and as a
new one) and credited once, a forged payload refused at pre-checkout, and an admin's refund."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import Live
from tests.e2e.flows import ask, eventually, settle
from tests.e2e.harness import ADMIN_ID, FREE_CREDITS
from tests.fakes.telegram_payments import Checkout

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]
PRE_CHECKOUT_LIMIT_S = 10.0  # Telegram gives up on a pre-checkout query not answered by then


async def _answered(live: Live, paying: Checkout) -> Checkout:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await live.tg.wait_for(lambda: paying.answer is not None, timeout=PRE_CHECKOUT_LIMIT_S)
    assert loop.time() - started < PRE_CHECKOUT_LIMIT_S
    return paying


async def test_a_purchase_is_credited_once_refused_when_forged_and_refunded(live: Live) -> None:
    tg, db, user = live.tg, live.db, 2401
    assert {c["command"] for p in tg.commands for c in p["commands"]} >= {"buy", "paysupport"}
    [menu] = await ask(tg, user, "/buy")
    assert menu.reply_markup is not None
    button = menu.reply_markup["inline_keyboard"][0][0]
    tg.push_callback(user, menu.message_id, button["callback_data"])
    [invoice] = await tg.wait_for(lambda: [i for i in tg.stars.invoices if i.chat_id == user], timeout=20)
    assert (invoice.currency, invoice.amount) == ("XTR", 50) and not invoice.provider_token

    paying = await _answered(live, tg.stars.pay(user, invoice))
    assert paying.answer == {"ok": True, "error_message": None} and paying.charge is not None
    charge = paying.charge
    await eventually(lambda: db.credits(user) == FREE_CREDITS + 100, what="the pack credited")
    await tg.wait_for(lambda: any("+100" in text for text in tg.texts(user)), timeout=20)

    tg.redeliver(charge.update_ids[0])  # Telegram thinks the bot missed it
    again = tg.stars.deliver_payment(charge.charge_id)  # the same payment in a new update
    await tg.wait_for(lambda: tg.delivered[again] >= 1 and tg.pending_updates() == 0, timeout=20)
    await settle(tg)
    assert db.credits(user) == FREE_CREDITS + 100
    assert len(db.rows("SELECT * FROM payments WHERE user_id = ?", user)) == 1
    assert [r["delta"] for r in db.rows(
        "SELECT delta FROM credit_ledger WHERE user_id = ? AND reason = 'purchase'", user)] == [100]

    body, _, mac = invoice.payload.rpartition(".")
    forged = await _answered(live, tg.stars.checkout(user, f"{body.replace('.100.', '.550.')}.{mac}", 50))
    assert forged.answer is not None and forged.answer["ok"] is False and forged.answer["error_message"]
    assert forged.charge is None

    start = len(tg.sent.get(ADMIN_ID, []))
    tg.push_message(ADMIN_ID, f"/refund {charge.charge_id}")
    await eventually(lambda: db.credits(user) == FREE_CREDITS, what="the credits taken back")
    assert tg.stars.charges[charge.charge_id].refunded
    await tg.wait_for(lambda: any("refunded" in m.plain for m in tg.messages(ADMIN_ID)[start:]), timeout=20)
    [row] = db.rows("SELECT status, credits_debited FROM payments WHERE user_id = ?", user)
    assert tuple(row) == ("refunded", 100)
