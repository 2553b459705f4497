"""/cancel: the request's owner asks the database to cancel, and the answer says what really happened."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.i18n import Translate
from bot.services.cancel import cancel
from bot.services.failures import credits_text
from bot.services.lifecycle import RequestLife
from db.repo.users import UserView


async def cmd_cancel(message: Message, user: UserView, t: Translate, life: RequestLife) -> None:
    reply = await cancel(life, user.tg_id)
    if reply.result == "refunded":
        await message.answer(t("cancel.done", credits=credits_text(reply.refunded, t)))
    else:
        await message.answer(t(f"cancel.{reply.result}"))


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_cancel, Command("cancel"))
    return built
