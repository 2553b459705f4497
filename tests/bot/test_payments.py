"""Buying credits with Telegram Stars through the real app and the fake Bot API: /buy, the invoice, the
pre-checkout answer, the payment credited once however often it arrives, refusals at pre-checkout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.i18n import Translate
from bot.services.invoices import InvoiceSigner
from bot.settings import CreditPack
from tests.bot.core_harness import CoreHarness
from tests.bot.stars_support import PACKS, buy, checkout, ledger, purchase
from tests.fakes.telegram_payments import Checkout

USER, OTHER = 2002, 2003
EN = Translate("en")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path, credit_packs=PACKS) as harness:
        yield harness


async def test_buy_shows_the_packs_and_a_button_sends_an_invoice_in_stars(h: CoreHarness) -> None:
    await h.say(USER, "/buy")
    menu = h.tg.messages(USER)[-1]
    assert menu.reply_markup is not None
    labels = [row[0]["text"] for row in menu.reply_markup["inline_keyboard"]]
    assert labels == ["100 credits for 50 ⭐", "550 credits for 250 ⭐"]
    invoice = await buy(h, USER, button=1)
    assert (invoice.chat_id, invoice.currency, invoice.amount) == (USER, "XTR", 250)
    assert not invoice.provider_token  # Stars: empty (aiogram leaves an empty one out of the request)
    assert invoice.title == "550 credits" and len(invoice.payload.encode()) <= 128
    assert h.tg.callback_answers[-1]["text"] is None  # the button stops spinning, no alert


async def test_a_purchase_is_credited_once_however_often_the_payment_arrives(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    paying = await checkout(h, h.tg.stars.pay(USER, invoice))
    assert paying.answer == {"ok": True, "error_message": None} and paying.charge is not None
    charge = paying.charge
    await h.feed(charge.update_ids[0])
    assert h.credits(USER) == 110
    assert "+100" in (h.tg.last_text(USER) or "") and "110" in (h.tg.last_text(USER) or "")

    await h.feed(charge.update_ids[0])  # the same update again: this process remembers it
    await h.feed(h.tg.stars.deliver_payment(charge.charge_id))  # a new update with the same charge
    await h.boot()  # a restart forgets every update it saw: the unique charge id still holds
    await h.feed(charge.update_ids[0])
    assert h.credits(USER) == 110
    assert ledger(h, USER) == [(10, "free"), (100, "purchase")]
    assert "already on your balance" in (h.tg.last_text(USER) or "")
    [row] = h.rows("SELECT * FROM payments")
    assert (row["charge_id"], row["user_id"], row["credits"], row["stars"], row["status"]) == \
        (charge.charge_id, USER, 100, 50, "paid")


async def test_a_forged_payload_is_refused_at_pre_checkout_and_nothing_is_charged(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    body, _, mac = invoice.payload.rpartition(".")
    cheaper = body.replace(".100.50.", ".550.50.")  # more credits for the same Stars, the old signature
    forged = await checkout(h, h.tg.stars.checkout(USER, f"{cheaper}.{mac}", 50))
    made_up = await checkout(h, h.tg.stars.checkout(USER, "anything at all", 1))
    for refused in (forged, made_up):
        assert refused.answer == {"ok": False, "error_message": EN("buy.refused.bad_payload")}
        assert refused.charge is None
    assert h.tg.stars.charges == {} and h.credits(USER) == 10


async def test_pre_checkout_refuses_another_payer_a_changed_amount_and_a_withdrawn_pack(h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    someone_else = await checkout(h, h.tg.stars.pay(OTHER, invoice))
    assert someone_else.answer == {"ok": False, "error_message": EN("buy.refused.not_yours")}
    cheaper = await checkout(h, h.tg.stars.checkout(USER, invoice.payload, 5))
    assert cheaper.answer == {"ok": False, "error_message": EN("buy.refused.wrong_amount")}

    h.settings = h.settings.model_copy(update={"credit_packs": (CreditPack(100, 60),)})  # repriced, restarted
    await h.boot()
    late = await checkout(h, h.tg.stars.pay(USER, invoice))
    assert late.answer == {"ok": False, "error_message": EN("buy.refused.pack_gone")}
    assert h.tg.stars.charges == {}


async def test_a_pre_checkout_is_answered_even_for_a_user_over_the_flood_limit(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, credit_packs=PACKS, throttle_rate=2) as h:
        invoice = await buy(h, USER)  # two updates: the limit is reached
        for _ in range(3):
            await h.say(USER, "/balance")
        paying = await checkout(h, h.tg.stars.pay(USER, invoice))
        assert paying.answer is not None and paying.answer["ok"] and paying.charge is not None
        await h.feed(paying.charge.update_ids[0])
        assert h.credits(USER) == 110


async def test_a_payment_that_matches_no_signed_invoice_is_kept_with_no_credits(h: CoreHarness) -> None:
    foreign = InvoiceSigner(b"another key").sign(CreditPack(100, 50), USER)
    await h.say(USER, "/start")
    charge = h.tg.stars._charge(Checkout("q", USER, foreign, "XTR", 50))  # as if pre-checkout had said yes
    await h.feed(charge.update_ids[0])
    assert h.credits(USER) == 10
    assert charge.charge_id in (h.tg.last_text(USER) or "")
    [row] = h.rows("SELECT credits, stars, status FROM payments")
    assert tuple(row) == (0, 50, "paid")


async def test_buy_without_packs_says_so_and_help_and_balance_point_to_it(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path) as h:
        await h.say(USER, "/buy")
        assert h.tg.last_text(USER) == EN("buy.none")
        await h.say(USER, "/balance")
        assert "/buy" not in (h.tg.last_text(USER) or "")
    (tmp_path / "with").mkdir()
    async with CoreHarness.start(tmp_path / "with", credit_packs=PACKS) as h:
        await h.say(USER, "/help")
        assert "/buy" in (h.tg.last_text(USER) or "") and "/paysupport" in (h.tg.last_text(USER) or "")
        await h.say(USER, "/balance")
        assert "/buy" in (h.tg.last_text(USER) or "")
        menu = {c["command"] for p in h.tg.commands for c in p["commands"]}
        assert {"buy", "paysupport"} <= menu


async def test_paysupport_explains_lists_payments_and_passes_a_message_to_the_admins(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    await h.say(USER, "/paysupport")
    shown = h.tg.last_text(USER) or ""
    assert "Help with a payment" in shown and charge.charge_id in shown
    await h.say(USER, "/paysupport I paid & <b>got</b> nothing?")
    assert h.tg.last_text(USER) == EN("paysupport.sent")
    to_admin = h.tg.last_text(1001) or ""
    assert "I paid & <b>got</b> nothing?" in to_admin and str(USER) in to_admin
    assert charge.charge_id in to_admin


async def test_a_grant_committed_before_a_failed_reply_stays_and_a_redelivery_only_tells_the_balance(
        h: CoreHarness) -> None:
    invoice = await buy(h, USER)
    paying = await checkout(h, h.tg.stars.pay(USER, invoice))
    assert paying.charge is not None
    h.tg.block(USER)  # the reply cannot be sent, as if the process died right after the commit
    await h.feed(paying.charge.update_ids[0])
    assert h.credits(USER) == 110
    h.tg.blocked.clear()
    await h.boot()
    await h.feed(paying.charge.update_ids[0])  # Telegram delivers it again
    assert h.credits(USER) == 110 and ledger(h, USER) == [(10, "free"), (100, "purchase")]
    assert "already on your balance" in (h.tg.last_text(USER) or "") and "110" in (h.tg.last_text(USER) or "")


async def test_an_invoice_paid_in_a_group_is_credited_though_nobody_mentioned_the_bot(h: CoreHarness) -> None:
    group = -1001234
    await h.say(USER, "/start")
    payload = InvoiceSigner.for_settings(h.settings).sign(CreditPack(100, 50), USER)
    message = h.tg.new_message(group, h.tg.users[USER], {"successful_payment": {
        "currency": "XTR", "total_amount": 50, "invoice_payload": payload,
        "telegram_payment_charge_id": "stxInAGroup", "provider_payment_charge_id": ""}})
    message["chat"] = {"id": group, "type": "supergroup", "title": "A group"}
    await h.feed(h.tg.push_update({"message": message}))
    assert h.credits(USER) == 110
    assert "+100" in (h.tg.last_text(group) or "")


async def test_out_of_credits_points_to_buy_while_packs_are_on_sale(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, credit_packs=PACKS, free_credits=0) as h:
        await h.say(USER, "a question")
        assert h.tg.last_text(USER) == EN("errors.insufficient_buy", cost="1 credit", balance=0)
    (tmp_path / "none").mkdir()
    async with CoreHarness.start(tmp_path / "none", free_credits=0) as h:
        await h.say(USER, "a question")
        assert h.tg.last_text(USER) == EN("errors.insufficient", cost="1 credit", balance=0)
        assert "/buy" not in (h.tg.last_text(USER) or "")
