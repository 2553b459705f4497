"""The catch-all router: /new, plain text to the user's chat label, a hint for anything else.

It comes last, so every command router (admin included) has had its turn first.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import Message, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translate
from bot.services.answers import Ask
from bot.services.generation import GenerationService
from db.repo.history import clear_history
from db.repo.users import UserView


async def cmd_new(message: Message, user: UserView, t: Translate, session: AsyncSession) -> None:
    await clear_history(session, user.tg_id)
    await message.answer(t("chat.new"))


async def unknown_command(message: Message, t: Translate) -> None:
    await message.answer(t("chat.unknown_command"))


async def chat(message: Message, bot: Bot, t: Translate, user: UserView, generation: GenerationService,
               event_update: Update) -> None:
    await generation.chat(Ask.of(message, bot, t, event_update.update_id), user, message.text or "")


async def unsupported(message: Message, t: Translate) -> None:
    await message.answer(t("chat.unsupported"))


def router() -> Router:
    """A fresh router for one Dispatcher; the handlers are tried in this order, the last takes anything."""
    built = Router(name=__name__)
    built.message.filter(F.chat.type == ChatType.PRIVATE)  # in groups the bot answers commands only
    built.message.register(cmd_new, Command("new"))
    built.message.register(unknown_command, F.text.startswith("/"))
    built.message.register(chat, F.text)
    built.message.register(unsupported)
    return built
