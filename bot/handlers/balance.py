"""/balance: credits left, today's and this month's requests and spend, and where to buy more."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translate
from bot.settings import Settings
from db.repo.stats import user_usage
from db.repo.users import UserView


async def cmd_balance(message: Message, user: UserView, t: Translate, session: AsyncSession,
                      settings: Settings) -> None:
    usage = await user_usage(session, user.tg_id, settings.timezone)
    if usage is None:  # the user middleware has just created them; cannot happen, but never crash
        await message.answer(t("balance.text", credits=user.credits, today_requests=0, today_credits=0,
                               month_requests=0, month_credits=0))
        return
    lines = [t("balance.text", credits=usage.credits_left, today_requests=usage.requests_today,
               today_credits=usage.credits_today, month_requests=usage.requests_month,
               month_credits=usage.credits_month)]
    if settings.daily_credit_limit or settings.monthly_credit_limit:
        unlimited = t("balance.unlimited")
        lines.append(t("balance.limits", day=settings.daily_credit_limit or unlimited,
                       month=settings.monthly_credit_limit or unlimited))
    if settings.credit_packs:
        lines.append(t("balance.buy"))
    await message.answer("\n\n".join(lines))


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_balance, Command("balance"))
    return built
