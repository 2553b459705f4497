"""/model: an inline keyboard of every label, grouped by category, each with its price; a tap remembers
the choice for that category."""

from __future__ import annotations

import contextlib
import dataclasses

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translate
from bot.services.failures import category_name, credits_text
from bot.services.generation import GenerationService
from bot.services.textfmt import html_to_plain
from db.repo.users import UserView, set_label
from providers.config import LabelConfig
from providers.types import Category


class ModelPick(CallbackData, prefix="model"):
    index: int  # position in the providers file: label names may be longer than callback data allows


def labels(generation: GenerationService) -> list[LabelConfig]:
    return generation.catalogue.labels()


def keyboard(generation: GenerationService, user: UserView, t: Translate) -> InlineKeyboardMarkup:
    every = labels(generation)
    rows: list[list[InlineKeyboardButton]] = []
    for category in Category:
        current = generation.label_for(user, category)
        for index, label in enumerate(every):
            if label.category is not category:
                continue
            mark = "✅ " if current is not None and current.name == label.name else ""
            text = f"{mark}{html_to_plain(category_name(str(category), t))}: {label.name} · " \
                   f"{credits_text(label.credits, t)}"
            rows.append([InlineKeyboardButton(text=text, callback_data=ModelPick(index=index).pack())])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def cmd_model(message: Message, user: UserView, t: Translate, generation: GenerationService) -> None:
    if not labels(generation):
        await message.answer(t("model.none"))
        return
    await message.answer(t("model.title"), reply_markup=keyboard(generation, user, t))


async def pick_model(query: CallbackQuery, callback_data: ModelPick, user: UserView, t: Translate,
                     session: AsyncSession, generation: GenerationService) -> None:
    every = labels(generation)
    if not 0 <= callback_data.index < len(every):
        await query.answer(html_to_plain(t("model.gone")), show_alert=True)
        return
    label = every[callback_data.index]
    await set_label(session, user.tg_id, label.name, category=str(label.category))
    await session.commit()
    chosen = {**user.labels, str(label.category): label.name}
    if isinstance(query.message, Message):
        with contextlib.suppress(TelegramBadRequest):  # "not modified": the same label tapped again
            await query.message.edit_reply_markup(
                reply_markup=keyboard(generation, dataclasses.replace(user, labels=chosen), t))
    await query.answer(html_to_plain(t("model.chosen", category=category_name(str(label.category), t),
                                       label=label.name, credits=credits_text(label.credits, t))))


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_model, Command("model"))
    built.callback_query.register(pick_model, ModelPick.filter())
    return built
