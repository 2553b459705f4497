"""Upsert the Telegram user on every update and give handlers `user` and `t`.

The upsert is committed at once (through the write queue, batched with other users' writes): a
generation can run for minutes, and holding SQLite's write lock that long would stall every other user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Translate, language_for
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.repo.users import UserView, upsert_user


class UserContext(BaseMiddleware):
    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: User | None = data.get("event_from_user")
        if tg_user is None or tg_user.is_bot:
            return await handler(event, data)
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
