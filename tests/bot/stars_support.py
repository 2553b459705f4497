"""Shared by the payment tests: a user buying a credit pack through the real app and the fake Bot API."""

from __future__ import annotations

from tests.bot.core_harness import CoreHarness
from tests.fakes.telegram_payments import Charge, Checkout, Invoice

PACKS = "100:50,550:250"


async def buy(h: CoreHarness, user: int, button: int = 0) -> Invoice:
    """/buy, then the pack's button: the invoice the bot sent."""
    await h.say(user, "/buy")
    menu = h.tg.messages(user)[-1]
    assert menu.reply_markup is not None
    pressed = menu.reply_markup["inline_keyboard"][button][0]
    await h.feed(h.tg.push_callback(user, menu.message_id, pressed["callback_data"]))
    return h.tg.stars.invoices[-1]


async def checkout(h: CoreHarness, paying: Checkout) -> Checkout:
    """Feed the pre-checkout query to the bot; it must have been answered."""
    await h.feed(paying.update_id)
    assert paying.answer is not None, "every pre-checkout query is answered"
    return paying


async def purchase(h: CoreHarness, user: int, button: int = 0) -> Charge:
    """A whole purchase: /buy, the button, pay, the payment delivered to the bot."""
    paying = await checkout(h, h.tg.stars.pay(user, await buy(h, user, button)))
    assert paying.charge is not None, paying.answer
    await h.feed(paying.charge.update_ids[0])
    return paying.charge


def ledger(h: CoreHarness, user: int) -> list[tuple[int, str]]:
    return [(r["delta"], r["reason"]) for r in
            h.rows("SELECT delta, reason FROM credit_ledger WHERE user_id = ? ORDER BY id", user)]
