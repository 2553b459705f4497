"""Per-user flood control: more than `rate` updates in `window` seconds are dropped, and the user is told
to slow down at most once per window. The bot's own /cancel always gets through: exactly what the /cancel
handler's Command filter accepts (`/cancel` or `/cancel@<this bot>`), so nothing that would reach any other
handler (`/cancel@someone_else hi` is chat text) skips the limit. With REDIS_URL set the counts are shared by
every front (bot.shared.throttle), so a user gets the same rate however updates are spread over them.

Payments are never throttled either: a pre-checkout query dropped here would leave Telegram waiting for
an answer, and a dropped successful payment would be Stars paid for credits never granted."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import Chat, TelegramObject, Update, User
from loguru import logger

from bot.i18n import language_for, t
from bot.shared.throttle import FloodGate, LocalFloodGate


class Throttling(BaseMiddleware):
    """`gate` keeps the counts: this process's own by default, or one every front shares (bot.shared)."""

    def __init__(self, rate: int, window: float, clock: Callable[[], float] = time.monotonic, *,
                 gate: FloodGate | None = None) -> None:
        self.rate = rate
        self.window = window
        self.local = LocalFloodGate(rate, window, clock)
        self.gate: FloodGate = gate or self.local

    def allow(self, user_id: int) -> tuple[bool, bool]:
        """(allowed, warn) from this process's own counts: warn is True for the first refused update of a
        window."""
        return tuple(self.local.hit_now(user_id))  # type: ignore[return-value]

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None or _is_payment(event) or await _is_own_cancel(event, data.get("bot")):
            return await handler(event, data)
        allowed, warn = await self.gate.hit(user.id)
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


def _is_payment(event: TelegramObject) -> bool:
    if not isinstance(event, Update):
        return False
    message = event.message
    return event.pre_checkout_query is not None or (
        message is not None and (message.successful_payment is not None or message.refunded_payment is not None))


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
