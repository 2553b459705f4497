"""/start, /help and /language."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import LANGUAGES, Translate
from bot.services.generation import GenerationService
from db.repo.users import UserView, set_language
from providers.types import Category

LANGUAGE_NAMES = {"en": "🇬🇧 English", "ru": "🇷🇺 Русский"}


class LanguagePick(CallbackData, prefix="lang"):
    code: str


async def cmd_start(message: Message, user: UserView, t: Translate, generation: GenerationService) -> None:
    label = generation.label_for(user, Category.TEXT)
    name = user.first_name or user.username or "👋"
    await message.answer(t("start.welcome", name=escape(name), label=escape(label.name if label else "—"),
                           balance=user.credits))


async def cmd_help(message: Message, t: Translate) -> None:
    await message.answer(t("start.help"))


async def cmd_language(message: Message, t: Translate) -> None:
    buttons = [[InlineKeyboardButton(text=LANGUAGE_NAMES[code], callback_data=LanguagePick(code=code).pack())]
               for code in LANGUAGES]
    await message.answer(t("language.choose"), reply_markup=InlineKeyboardMarkup(inline_keyboard=buttons))


async def pick_language(query: CallbackQuery, callback_data: LanguagePick, user: UserView,
                        session: AsyncSession) -> None:
    await set_language(session, user.tg_id, callback_data.code)
    done = Translate(callback_data.code)("language.set")
    if isinstance(query.message, Message):
        await query.message.edit_text(done)
    await query.answer()


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_start, CommandStart())
    built.message.register(cmd_help, Command("help"))
    built.message.register(cmd_language, Command("language"))
    built.callback_query.register(pick_language, LanguagePick.filter(F.code.in_(LANGUAGES)))
    return built
