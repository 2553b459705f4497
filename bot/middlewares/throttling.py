"""Per-user flood control: more than `rate` updates in `window` seconds are dropped, and the user is told
to slow down at most once per window. The bot's own /cancel always gets through: exactly what the /cancel
handler's Command filter accepts (`/cancel` or `/cancel@<this bot>`), so nothing that would reach any other
handler (`/cancel@someone_else hi` is chat text) skips the limit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import Chat, TelegramObject, Update, User
from loguru import logger

from bot.i18n import language_for, t


class Throttling(BaseMiddleware):
    def __init__(self, rate: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._warned_until: dict[int, float] = {}

    def allow(self, user_id: int) -> tuple[bool, bool]:
        """(allowed, warn): warn is True for the first refused update of a window."""
        now = self.clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) < self.rate:
            hits.append(now)
            if len(self._hits) > 50_000:
                self._forget_idle(now)
            return True, False
        if self._warned_until.get(user_id, 0.0) > now:
            return False, False
        self._warned_until[user_id] = now + self.window
        return False, True

    def _forget_idle(self, now: float) -> None:
        for user_id in [u for u, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            self._hits.pop(user_id, None)
            self._warned_until.pop(user_id, None)

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or await _is_own_cancel(event, data.get("bot")):
            return await handler(event, data)
        allowed, warn = self.allow(user.id)
        if allowed:
            return await handler(event, data)
        logger.info("user {} throttled", user.id)
        chat: Chat | None = data.get("event_chat")
        bot: Bot | None = data.get("bot")
        if warn and chat is not None and bot is not None:
            try:
                await bot.send_message(chat.id, t("errors.throttled", language_for(user.language_code)))
            except TelegramAPIError as exc:
                logger.debug("could not send the slow-down notice: {}", exc)
        return None


_CANCEL = Command("cancel")  # the very filter bot/handlers/cancel.py registers


async def _is_own_cancel(event: TelegramObject, bot: Bot | None) -> bool:
    message = event.message if isinstance(event, Update) else None
    if message is None or bot is None:
        return False
    try:
        return bool(await _CANCEL(message, bot))  # asks getMe (cached) only when a mention is present
    except TelegramAPIError as exc:
        logger.debug("could not learn the bot's username, /cancel is throttled: {}", exc)
        return False
