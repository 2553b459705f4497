"""A document with a question (its caption): PDF, plain text, Markdown and source files become the
context of a chat request, through the same path as a chat message (`GenerationService.chat`).

Everything that can refuse does so before anything is charged: the type and announced size first, the
user's running request next (so a busy user's file is not downloaded for nothing), then the download
(capped), then reading it (`bot.services.documents`: encrypted, too many pages, no text layer, ...).
"""

from __future__ import annotations

import asyncio

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, Update
from loguru import logger

from bot.addressing import GROUP_CHATS, group_question
from bot.i18n import Translate
from bot.services.answers import Ask
from bot.services.documents import Limits, Refused, accepted, read_document
from bot.services.generation import GenerationService
from bot.services.telegram_files import TooBig, download_capped
from bot.settings import Settings
from db.repo.users import UserView
from providers import Category, GenerationRequest


async def _question(message: Message, bot: Bot, t: Translate) -> str:
    """The caption (in a group: as chat messages are read there, `group_question`)."""
    if message.chat.type not in GROUP_CHATS:
        return (message.caption or "").strip() or t("documents.default_question")
    return group_question(message, await bot.me(), t("documents.default_question"))


async def on_document(message: Message, bot: Bot, t: Translate, user: UserView, generation: GenerationService,
                      settings: Settings, event_update: Update) -> None:
    assert message.document is not None  # the router's filter
    ask = Ask.of(message, bot, t, event_update.update_id)
    file = message.document
    name = file.file_name or "document"
    limits = Limits(settings.max_document_bytes, settings.max_document_pages, settings.max_document_chars)
    question = await _question(message, bot, t)
    try:
        kind = accepted(file.file_name, file.mime_type, file.file_size, limits)
    except Refused as refused:
        await ask.say(t(refused.key, **refused.params))
        return
    if problem := generation.invalid_input(question, t, "errors.empty"):
        await ask.say(problem)
        return
    if await generation.refused_as_busy(ask, user, GenerationRequest(Category.TEXT, prompt=question)):
        return
    try:
        data = await download_capped(bot, file.file_id, limits.max_bytes)
        document = await asyncio.to_thread(read_document, data, kind, name, limits)
    except TooBig:
        await ask.say(t("documents.too_big", limit=f"{limits.max_bytes / (1024 * 1024):.3g}"))
        return
    except Refused as refused:
        await ask.say(t(refused.key, **refused.params))
        return
    except TelegramAPIError as exc:
        logger.info("document download failed for user {}: {}", user.tg_id, exc)
        await ask.say(t("documents.failed"))
        return
    if document.cut:
        read = {"read": document.pages_read, "pages": document.pages}
        await ask.say(t("documents.cut_pages", kept=len(document.text), **read) if document.pages
                      else t("documents.cut", kept=len(document.text)))
    await generation.chat(ask, user, question, document=document)


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(on_document, F.document)
    return built
