"""Admin payments: /refund <charge id> [force] and /payments [period]. Guarded by `IsAdmin` (private chats
only); anyone else is answered by the refusal in `bot.handlers.admin`.

/refund, in order: the payment must exist and not be refunded yet; when the user has already spent part
of its credits, the admin must confirm with `force` (the balance then goes to zero, never below); then
Telegram refunds the Stars (refundStarPayment); only then is the refund recorded, taking back the credits
in one transaction. A refund Telegram refuses changes nothing. A refund Telegram made before (a crash
between its answer and our record, or a refund outside the bot) answers CHARGE_ALREADY_REFUNDED, and is
recorded now.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.filters import IsAdmin
from bot.handlers.admin_stats import answer_blocks, read_scope, usage
from bot.i18n import Translate, language_for
from bot.services.durable import DurableWrites, WriteFailed
from bot.services.purchases import refund_text
from bot.services.reports import esc, period_text, user_name
from bot.services.revenue import revenue_text
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.repo.payments import Refund, find_payment, record_refund
from db.repo.revenue import payment_events, revenue
from db.repo.stats import request_totals
from db.repo.users import get_user

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
SHOWN_EVENTS = 30  # /payments lists this many, newest first; /export has them all


async def cmd_refund(message: Message, command: CommandObject, t: Translate, session: AsyncSession, bot: Bot,
                     settings: Settings, db_writes: WriteQueue) -> None:
    args = (command.args or "").split()
    if not 1 <= len(args) <= 2 or (len(args) == 2 and args[1].lower() != "force") or message.from_user is None:
        await message.answer(usage(t, "refund"), parse_mode=ParseMode.HTML)
        return
    charge, force, admin_id = args[0], len(args) == 2, message.from_user.id
    payment = await find_payment(session, charge)
    if payment is None:
        await message.answer(t("admin.refund.not_found", charge=esc(charge)), parse_mode=ParseMode.HTML)
        return
    if payment.refunded:
        assert payment.refunded_at is not None
        await message.answer(t("admin.refund.already", date=payment.refunded_at.astimezone(settings.tz)
                               .strftime("%Y-%m-%d %H:%M"), debited=payment.credits_debited),
                             parse_mode=ParseMode.HTML)
        return
    owner = await get_user(session, payment.user_id)
    who = f"{esc(user_name(payment.user_id, owner.username if owner else None, owner.first_name if owner else None))}" \
          f" (<code>{payment.user_id}</code>)"
    balance = owner.credits if owner is not None else 0
    if balance < payment.credits and not force:
        await message.answer(t("admin.refund.spent", user=who, balance=balance, credits=payment.credits,
                               stars=payment.stars, charge=esc(charge)), parse_mode=ParseMode.HTML)
        return
    await session.rollback()  # no read transaction held open across the call to Telegram
    late = False
    try:
        await bot.refund_star_payment(user_id=payment.user_id, telegram_payment_charge_id=charge)
    except TelegramBadRequest as exc:
        if ALREADY_REFUNDED not in exc.message:
            logger.info("admin {}: Telegram refused the refund of {}: {}", admin_id, charge, exc.message)
            await message.answer(t("admin.refund.refused", reason=esc(exc.message)), parse_mode=ParseMode.HTML)
            return
        late = True
    except TelegramAPIError as exc:
        await message.answer(t("admin.refund.unreachable", reason=esc(type(exc).__name__)), parse_mode=ParseMode.HTML)
        return
    try:
        refund = await DurableWrites(db_writes).write(lambda s: record_refund(s, charge, by=admin_id))
    except WriteFailed:
        logger.error("payment {} refunded by Telegram but not recorded: /refund it again", charge)
        await message.answer(t("admin.refund.not_recorded"), parse_mode=ParseMode.HTML)
        return
    assert refund is not None  # the payment row exists (read above) and is never deleted
    logger.info("admin {} refunded payment {}: {} Stars, {} credits taken back", admin_id, charge,
                refund.payment.stars, refund.payment.credits_debited)
    reply = t("admin.refund.done", stars=refund.payment.stars, user=who, debited=refund.payment.credits_debited,
              credits=refund.payment.credits, balance=refund.balance)
    await message.answer(reply + ("\n" + t("admin.refund.late") if late else ""), parse_mode=ParseMode.HTML)
    if refund.new:
        await _tell_user(bot, refund, owner.language if owner else None)


async def _tell_user(bot: Bot, refund: Refund, language: str | None) -> None:
    text = refund_text(refund, Translate(language_for(language)))
    try:
        await bot.send_message(refund.payment.user_id, text, parse_mode=ParseMode.HTML)
    except TelegramAPIError as exc:
        logger.info("refund notice to {} not delivered: {}", refund.payment.user_id, type(exc).__name__)


async def cmd_payments(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                       settings: Settings) -> None:
    scope = await read_scope(message, command, t, settings, name="payments", default_period="30d",
                             category="refused")
    if scope is None:
        return
    period = scope.period
    blocks = [t("admin.payments.title", period=period_text(period, t, settings.tz))]
    found = await revenue(session, period)
    if not found.any:
        await answer_blocks(message, [*blocks, t("admin.payments.none")])
        return
    cost = (await request_totals(session, period)).cost_micros
    blocks.append(revenue_text(found, cost, settings.stars_usd_rate, t))
    for event in await payment_events(session, period, SHOWN_EVENTS):
        blocks.append(t(f"admin.payments.{event.kind}", at=event.at.astimezone(settings.tz).strftime("%m-%d %H:%M"),
                        user=esc(user_name(event.user_id, event.username, event.first_name)),
                        credits=event.credits, stars=event.stars, charge=esc(event.charge_id)))
    hidden = found.purchases + found.refunds - SHOWN_EVENTS  # the events are these purchases and refunds
    if hidden > 0:
        blocks.append(t("admin.payments.more", n=hidden))
    await answer_blocks(message, blocks)


def router() -> Router:
    """A fresh router for one Dispatcher; `admin.router()` includes it."""
    built = Router(name=__name__)
    built.message.register(cmd_refund, Command("refund"), IsAdmin())
    built.message.register(cmd_payments, Command("payments"), IsAdmin())
    return built
