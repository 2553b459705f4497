"""Buying credits with Telegram Stars: /buy, the invoice, pre-checkout, the payment, /paysupport.

The flow, top to bottom: /buy shows CREDIT_PACKS as buttons; a button sends an invoice in Stars (XTR, no
provider token) whose payload names the pack and the user, signed (`bot.services.invoices`); Telegram asks
before charging (pre_checkout_query), and we answer at once, yes only for a valid payload of that user and
a pack still offered at that price; after the charge a `successful_payment` message grants the credits,
once per charge id, committed before the user is told (`bot.services.purchases`, the path the Star
transactions' reconciliation takes too). A refund made outside /refund (Telegram sends a
`refunded_payment` message) is recorded the same way /refund records one.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
)
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translate
from bot.services.invoices import STARS, InvoiceSigner, checkout_problem
from bot.services.payment_support import forward_to_admins, payments_lines
from bot.services.purchases import PaidCharge, grant_payment, record_outside_refund, refund_text
from bot.services.writes import WriteQueue
from bot.settings import CreditPack, Settings
from db.repo.payments import user_payments
from db.repo.users import UserView

SUPPORT_TEXT_MAX = 2000  # what a /paysupport message carries to the admins


class BuyPack(CallbackData, prefix="buy"):
    credits: int
    stars: int


async def cmd_buy(message: Message, user: UserView, t: Translate, settings: Settings) -> None:
    if not settings.credit_packs:
        await message.answer(t("buy.none"))
        return
    buttons = [[InlineKeyboardButton(text=t("buy.button", credits=p.credits, stars=p.stars),
                                     callback_data=BuyPack(credits=p.credits, stars=p.stars).pack())]
               for p in settings.credit_packs]
    await message.answer(t("buy.choose", balance=user.credits),
                         reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons))


async def send_invoice(query: CallbackQuery, callback_data: BuyPack, t: Translate, settings: Settings,
                       invoices: InvoiceSigner, bot: Bot) -> None:
    pack = CreditPack(callback_data.credits, callback_data.stars)
    if pack not in settings.credit_packs:  # a button under an old /buy, since repriced or withdrawn
        await query.answer(t("buy.gone"), show_alert=True)
        return
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    try:
        await bot.send_invoice(
            chat_id, title=t("buy.invoice_title", credits=pack.credits),
            description=t("buy.invoice_description", credits=pack.credits),
            payload=invoices.sign(pack, query.from_user.id), currency=STARS, provider_token="",
            prices=[LabeledPrice(label=t("buy.price_label", credits=pack.credits), amount=pack.stars)])
    except TelegramAPIError as exc:
        logger.warning("invoice for user {} not sent: {}", query.from_user.id, exc.message)
        await query.answer(t("buy.failed"), show_alert=True)
        return
    await query.answer()


async def pre_checkout(query: PreCheckoutQuery, t: Translate, settings: Settings, invoices: InvoiceSigner) -> None:
    """Answered within Telegram's ten seconds: nothing here waits on anything but the answer itself."""
    problem = checkout_problem(invoices.read(query.invoice_payload), payer_id=query.from_user.id,
                               currency=query.currency, total_amount=query.total_amount,
                               packs=settings.credit_packs)
    if problem is None:
        await query.answer(ok=True)
        return
    logger.info("pre-checkout of user {} refused: {}", query.from_user.id, problem)
    await query.answer(ok=False, error_message=t(f"buy.refused.{problem}"))


async def paid(message: Message, t: Translate, invoices: InvoiceSigner, db_writes: WriteQueue) -> None:
    """Also told when delivered again: the user may never have seen the first answer."""
    payment, payer = message.successful_payment, message.from_user
    assert payment is not None and payer is not None  # the filter and the user middleware see to both
    grant = await grant_payment(PaidCharge(
        payment.telegram_payment_charge_id, payer.id, payment.invoice_payload, payment.currency,
        payment.total_amount, payment.provider_payment_charge_id), invoices, db_writes)
    await message.answer(grant.text(t))


async def refunded(message: Message, t: Translate, db_writes: WriteQueue) -> None:
    """Telegram's notice of a refund: recorded if /refund has not recorded it already."""
    notice = message.refunded_payment
    assert notice is not None
    refund = await record_outside_refund(notice.telegram_payment_charge_id, db_writes)
    if refund is not None:
        await message.answer(refund_text(refund, t))


async def cmd_paysupport(message: Message, command: CommandObject, user: UserView, t: Translate,
                         session: AsyncSession, settings: Settings, bot: Bot) -> None:
    recent = await user_payments(session, user.tg_id)
    text = (command.args or "").strip()
    if not text:
        listing = [t("paysupport.recent"), *payments_lines(recent, t, settings)] if recent else [t("paysupport.none")]
        await message.answer(t("paysupport.text") + "\n\n" + "\n".join(listing))
        return
    reached = await forward_to_admins(bot, session, settings, user, text[:SUPPORT_TEXT_MAX], recent)
    await message.answer(t("paysupport.sent") if reached else t("paysupport.not_sent"))


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_buy, Command("buy"))
    built.message.register(cmd_paysupport, Command("paysupport"))
    built.callback_query.register(send_invoice, BuyPack.filter())
    built.pre_checkout_query.register(pre_checkout)
    built.message.register(paid, F.successful_payment)
    built.message.register(refunded, F.refunded_payment)
    return built
