"""/paysupport: a user's latest payments as lines, and their message passed on to every admin.

Telegram asks bots that take Stars to answer payment questions; the admins are the ones who can refund
(/refund), so the user's words go to each of them, in the admin's language, with the user's payments.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Bot
from aiogram.enums import ParseMode
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import DEFAULT_LANG, Translate, language_for
from bot.services.alerts import send_each
from bot.services.reports import esc, user_name
from bot.settings import Settings
from db.repo.payments import PaymentView
from db.repo.users import UserView, get_user


def payments_lines(payments: Sequence[PaymentView], t: Translate, settings: Settings) -> list[str]:
    return [t("paysupport.item", date=p.created_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M"),
              stars=p.stars, credits=p.credits, charge=esc(p.charge_id),
              refunded=t("paysupport.item_refunded") if p.refunded else "")
            for p in payments]


async def forward_to_admins(bot: Bot, session: AsyncSession, settings: Settings, user: UserView, text: str,
                            payments: Sequence[PaymentView]) -> list[int]:
    """Send the user's message to every admin; the admins reached."""
    languages: dict[int, str] = {}
    for admin_id in settings.admin_ids:
        admin = await get_user(session, admin_id)
        languages[admin_id] = language_for(admin.language) if admin is not None else DEFAULT_LANG

    async def deliver(chat_id: int) -> None:
        t = Translate(languages.get(chat_id, DEFAULT_LANG))
        who = esc(user_name(user.tg_id, user.username, user.first_name))
        lines = [t("admin.paysupport.message", user=who, id=user.tg_id, text=esc(text))]
        if payments:
            lines.append("\n".join([t("admin.paysupport.payments"), *payments_lines(payments, t, settings)]))
        await bot.send_message(chat_id, "\n\n".join(lines), parse_mode=ParseMode.HTML)

    return await send_each(sorted(settings.admin_ids), deliver, "payment support")
