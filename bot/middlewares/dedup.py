"""Drop an update whose id was seen moments ago (Telegram re-delivers after timeouts and restarts).

The ids are kept by a `SeenUpdates` (bot.shared.dedup): this process's memory by default, which catches
the common case cheaply; with REDIS_URL set, Redis, so a duplicate that reaches another front is served
once too. Across restarts the charge is still protected by the unique update id in the requests table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from loguru import logger

from bot.shared.dedup import LocalSeenUpdates, SeenUpdates


class UpdateDedup(BaseMiddleware):
    def __init__(self, remember: int = 10_000, *, seen: SeenUpdates | None = None) -> None:
        self.seen: SeenUpdates = seen or LocalSeenUpdates(remember)

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update) and not await self.seen.first(event.update_id):
            logger.info("update {} delivered again; ignored", event.update_id)
            return None
        return await handler(event, data)
