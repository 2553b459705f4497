"""Admin commands: /providers, /grant, /user, /digest, /export here; /stats, /cost, /recommended in
`admin_stats`, /refund and /payments in `admin_payments` (both included below). Only `ADMIN_IDS`, only
in a private chat with the bot.

Anyone else who sends one of these commands gets one flat refusal, the same for every command and every
argument, that holds no figure (tests check that nothing leaks). It is answered here rather than left to
the catch-all router, which would otherwise take `/stats` for an unknown command or, worse, a prompt.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.commands import ADMIN_COMMANDS
from bot.filters import IsAdmin
from bot.handlers import admin_payments, admin_stats
from bot.handlers.admin_stats import answer_blocks, read_scope, usage
from bot.i18n import Translate, language_for
from bot.services.digest import send_digest
from bot.services.export import export_csv, export_payments_csv, fit_for_telegram
from bot.services.reports import esc, period_text, providers_blocks, user_card, user_name
from bot.services.revenue import revenue_text
from bot.settings import Settings
from db.repo.revenue import revenue
from db.repo.stats import request_totals, user_usage
from db.repo.users import get_user, grant_credits
from providers.manager import ProviderManager

MAX_GRANT = 1_000_000  # one typo must not mint a fortune


async def refuse(message: Message, t: Translate) -> None:
    await message.answer(t("admin.refused"), parse_mode=ParseMode.HTML)


async def cmd_providers(message: Message, t: Translate, settings: Settings, manager: ProviderManager) -> None:
    await answer_blocks(message, providers_blocks(manager.health_snapshot(), t, settings.tz, settings.timezone))


def _parse_id_and_credits(raw: str | None) -> tuple[int, int] | None:
    parts = (raw or "").split()
    if len(parts) != 2:
        return None
    try:
        tg_id, credits = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    if tg_id <= 0 or credits == 0 or abs(credits) > MAX_GRANT:
        return None
    return tg_id, credits


async def cmd_grant(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                    bot: Bot) -> None:
    parsed = _parse_id_and_credits(command.args)
    if parsed is None or message.from_user is None:
        await message.answer(usage(t, "grant"), parse_mode=ParseMode.HTML)
        return
    tg_id, credits = parsed
    target = await get_user(session, tg_id)
    if target is None:
        await message.answer(t("admin.grant.no_user", id=tg_id), parse_mode=ParseMode.HTML)
        return
    who = f"{esc(user_name(tg_id, target.username, target.first_name))} (<code>{tg_id}</code>)"
    balance = await grant_credits(session, tg_id, credits, reason="admin_grant", by=message.from_user.id)
    if balance is None:
        await message.answer(t("admin.grant.would_be_negative", user=who, balance=target.credits),
                             parse_mode=ParseMode.HTML)
        return
    await session.commit()  # the user is told only about credits that are really theirs
    logger.info("admin {} granted {} credits to {}", message.from_user.id, credits, tg_id)
    reply = t("admin.grant.done", credits=f"{credits:+d}", user=who, balance=balance)
    if credits > 0 and not await _notify_grant(bot, tg_id, credits, balance, target.language):
        reply += "\n" + t("admin.grant.notify_failed")
    await message.answer(reply, parse_mode=ParseMode.HTML)


async def _notify_grant(bot: Bot, tg_id: int, credits: int, balance: int, language: str | None) -> bool:
    text = Translate(language_for(language))("admin.grant.notify", credits=credits, balance=balance)
    try:
        await bot.send_message(tg_id, text, parse_mode=ParseMode.HTML)
    except TelegramAPIError as exc:
        logger.info("grant notice to {} not delivered: {}", tg_id, type(exc).__name__)
        return False
    return True


async def cmd_user(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                   settings: Settings) -> None:
    raw = (command.args or "").strip()
    if not raw.isdigit():
        await message.answer(usage(t, "user"), parse_mode=ParseMode.HTML)
        return
    view = await get_user(session, int(raw))
    if view is None:
        await message.answer(t("admin.user.not_found", id=int(raw)), parse_mode=ParseMode.HTML)
        return
    found = await user_usage(session, view.tg_id, settings.tz)
    await message.answer(user_card(view, found, t, settings.tz), parse_mode=ParseMode.HTML)


async def cmd_digest(message: Message, command: CommandObject, t: Translate, bot: Bot,
                     sessions: async_sessionmaker[AsyncSession], settings: Settings,
                     manager: ProviderManager) -> None:
    scope = await read_scope(message, command, t, settings, name="digest", default_period="yesterday",
                             category="refused")
    if scope is None:
        return
    await send_digest(bot, sessions, settings, manager, scope.period, chat_ids=[message.chat.id])


async def cmd_export(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                     settings: Settings) -> None:
    scope = await read_scope(message, command, t, settings, name="export", default_period="today", category="refused")
    if scope is None:
        return
    data, rows = await export_csv(session, scope.period)
    period = period_text(scope.period, t, settings.tz)
    local_start = scope.period.start.astimezone(settings.tz).date().isoformat()
    if rows == 0:
        await message.answer(t("admin.export.empty", period=period), parse_mode=ParseMode.HTML)
    else:
        payload, filename = fit_for_telegram(data, f"requests-{scope.period.name}-{local_start}.csv")
        await message.answer_document(BufferedInputFile(payload, filename=filename),
                                      caption=t("admin.export.caption", period=period, rows=rows),
                                      parse_mode=ParseMode.HTML)
    data, rows = await export_payments_csv(session, scope.period, settings.stars_usd_rate)
    if rows:  # beside the requests: what users paid, with the period's revenue and margin
        paid = await revenue(session, scope.period)
        cost = (await request_totals(session, scope.period)).cost_micros
        caption = t("admin.export.payments_caption", period=period, rows=rows,
                    revenue=revenue_text(paid, cost, settings.stars_usd_rate, t))
        document = BufferedInputFile(data, filename=f"payments-{scope.period.name}-{local_start}.csv")
        await message.answer_document(document, caption=caption, parse_mode=ParseMode.HTML)


def router() -> Router:
    """A fresh router for one Dispatcher: the refusal first, so a non-admin never reaches a command;
    the `admin_stats` and `admin_payments` commands as its sub-routers."""
    built = Router(name=__name__)
    built.include_router(admin_stats.router())
    built.include_router(admin_payments.router())
    built.message.register(refuse, Command(*ADMIN_COMMANDS), ~IsAdmin())
    built.message.register(cmd_providers, Command("providers"), IsAdmin())
    built.message.register(cmd_grant, Command("grant"), IsAdmin())
    built.message.register(cmd_user, Command("user"), IsAdmin())
    built.message.register(cmd_digest, Command("digest"), IsAdmin())
    built.message.register(cmd_export, Command("export"), IsAdmin())
    return built
