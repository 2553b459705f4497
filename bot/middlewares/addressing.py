"""In groups, drop every message that is not for the bot (see `bot.addressing`), before anything else
looks at it: no flood count, no database session, no user row, no handler. Private chats, callback
queries and other updates pass untouched, and so do payments: an invoice paid in a group is paid to this
bot, and its credits must be granted whoever was mentioned."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, TelegramObject, Update
from loguru import logger

from bot.addressing import GROUP_CHATS, addressed_to


class GroupAddressing(BaseMiddleware):
    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        message = event.message if isinstance(event, Update) else None
        bot: Bot | None = data.get("bot")
        if message is None or bot is None or message.chat.type not in GROUP_CHATS or _is_payment(message):
            return await handler(event, data)
        try:
            me = await bot.me()  # asked once, then cached by the Bot
        except TelegramAPIError as exc:  # without its own name the bot cannot tell: it stays quiet
            logger.warning("group message {} ignored: getMe failed ({})", message.message_id, exc)
            return None
        if not addressed_to(message, me):
            return None
        return await handler(event, data)


def _is_payment(message: Message) -> bool:
    return message.successful_payment is not None or message.refunded_payment is not None
