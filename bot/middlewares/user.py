"""Upsert the Telegram user on every update and give handlers `user` and `t`.

Only a person gets that far. An update with no sender, from a bot, or sent on behalf of a chat
(`sender_chat`: an anonymous group admin is `from` GroupAnonymousBot, a post as a channel is Channel_Bot,
a linked channel's auto-forward is the non-bot 777000) is dropped here, before any handler: there is no
one to charge, to answer in their language, or to check against ADMIN_IDS, and every handler relies on it.

The upsert is committed at once (through the write queue, batched with other users' writes): a
generation can run for minutes, and holding SQLite's write lock that long would stall every other user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translate, language_for
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.repo.users import UserView, upsert_user


class UserContext(BaseMiddleware):
    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: User | None = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot or _on_behalf_of_a_chat(event):
            logger.debug("update from {} ignored: not a person", "nobody" if tg_user is None else tg_user.id)
            return None
        settings: Settings = data["settings"]

        def upsert(session: AsyncSession) -> Awaitable[UserView]:
            return upsert_user(
                session, tg_user.id, username=tg_user.username, first_name=tg_user.first_name,
                last_name=tg_user.last_name, language=tg_user.language_code,
                is_admin=settings.is_admin(tg_user.id), free_credits=settings.free_credits)

        writes: WriteQueue = data["db_writes"]
        view = await writes.run(upsert)
        data["user"] = view
        data["t"] = Translate(language_for(view.language))
        return await handler(event, data)


def _on_behalf_of_a_chat(event: TelegramObject) -> bool:
    inner = event.event if isinstance(event, Update) else event
    return getattr(inner, "sender_chat", None) is not None
