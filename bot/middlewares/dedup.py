"""Drop an update whose id was seen moments ago (Telegram re-delivers after timeouts and restarts).

Memory only, so it catches the common case cheaply; across restarts the charge is still protected by
the unique update id in the requests table.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from loguru import logger


class UpdateDedup(BaseMiddleware):
    def __init__(self, remember: int = 10_000) -> None:
        self.remember = remember
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            if event.update_id in self._seen:
                logger.info("update {} delivered again; ignored", event.update_id)
                return None
            self._seen[event.update_id] = None
            if len(self._seen) > self.remember:
                self._seen.popitem(last=False)
        return await handler(event, data)
