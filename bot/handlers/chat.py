"""The catch-all router: /new, plain text to the user's chat label, a hint for anything else.

It comes last, so every command router (admin included) has had its turn first. In a group it sees only
what is addressed to the bot (`bot.middlewares.addressing`); the question is `bot.addressing.group_question`:
signed with the sender's name, so that the model can tell the members of a conversation apart, and with
the member's message it replies to quoted.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import Message, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.addressing import GROUP_CHATS, group_question
from bot.i18n import Translate
from bot.services.answers import Ask
from bot.services.generation import GenerationService
from db.repo.history import clear_history
from db.repo.users import UserView


async def cmd_new(message: Message, bot: Bot, t: Translate, session: AsyncSession) -> None:
    """Starts the conversation over: the private chat's, or the group's (its forum topic's) for everyone."""
    await clear_history(session, Ask.of(message, bot, t, None).conversation)
    await message.answer(t("chat.new"))


def _named_command(message: Message) -> bool:
    """A command written for this bot by name (`/x@this_bot`: in a group, others are not ours to answer)."""
    return message.chat.type == ChatType.PRIVATE or "@" in (message.text or "").split(maxsplit=1)[0]


async def unknown_command(message: Message, t: Translate) -> None:
    await message.answer(t("chat.unknown_command"))


async def chat(message: Message, bot: Bot, t: Translate, user: UserView, generation: GenerationService,
               event_update: Update) -> None:
    text = message.text or ""
    if message.chat.type in GROUP_CHATS:
        text = group_question(message, await bot.me())
    await generation.chat(Ask.of(message, bot, t, event_update.update_id), user, text)


async def unsupported(message: Message, t: Translate) -> None:
    await message.answer(t("chat.unsupported"))


def router() -> Router:
    """A fresh router for one Dispatcher; the handlers are tried in this order, the last takes anything."""
    built = Router(name=__name__)
    built.message.filter(F.chat.type.in_({ChatType.PRIVATE, *GROUP_CHATS}))  # not channels
    built.message.register(cmd_new, Command("new"))
    built.message.register(unknown_command, F.text.startswith("/"), _named_command)
    built.message.register(chat, F.text, ~F.text.startswith("/"))
    built.message.register(unsupported, ~F.text.startswith("/"))
    return built
