"""A streamed answer shown as a native draft, where Telegram has them: private chats.

Bot API 9.5 lets a bot stream a draft (`sendMessageDraft`) into a private chat: the user sees the answer
grow as a preview, with no message to edit, so no edit flood and no "message is not modified". The draft
is ephemeral; the answer is kept by one `sendMessage` per message of it once it is complete:

    update(text)   every `interval`: a message of the answer that is full (the text went on past it) is
                   sent for good; the open end is shown as the draft (one draft id per message)
    finish(text)   the rest sent as messages (`TextStreamer._show`, which also fixes a message whose
                   split point moved after it was sent)

The draft is the answer reaching the user: the gate is asked before the first draft and told after it,
as the edited reply does for its first message. When Telegram refuses drafts (an older local Bot API
server, a chat that is not private after all), the stream carries on as an edited reply from there.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramNotFound
from loguru import logger

from bot.services.delivery import TextStreamer, _Sent

DRAFT_ID_SPAN = 2**30  # draft ids are positive 32-bit integers here: a random base, plus the message's index


def is_private(chat_id: int) -> bool:
    """Telegram gives private chats the user's (positive) id; groups and channels have negative ids."""
    return chat_id > 0


class DraftStreamer(TextStreamer):
    def __init__(self, bot: Bot, chat_id: int, **kwargs: Any) -> None:
        super().__init__(bot, chat_id, **kwargs)
        self.drafting = True
        self._draft_base = secrets.randbelow(DRAFT_ID_SPAN) + 1
        self._reached: Callable[[], Awaitable[None]] = self.after_first
        self._told = False
        self.after_first = self._tell_once  # a draft or a message, whichever reaches the user first

    async def _tell_once(self) -> None:
        if not self._told:
            self._told = True
            await self._reached()

    async def _preview(self, text: str) -> None:
        if not self.drafting:
            await super()._preview(text)
            return
        parts = self.layout(text)
        for index in range(len(self.sent), len(parts) - 1):  # full messages: sent for good
            message = await self._send(parts[index])
            self.sent.append(_Sent(message.message_id, parts[index]))
        if len(parts) > len(self.sent):
            await self._draft(len(parts) - 1, parts[-1], text)

    async def _draft(self, index: int, part: str, text: str) -> None:
        if not self._cleared:
            await self.before_first()
            self._cleared = True
        try:
            await self.bot.send_message_draft(self.chat_id, self._draft_base + index, text=part,
                                              parse_mode=ParseMode.HTML, message_thread_id=self.thread_id)
        except (TelegramBadRequest, TelegramNotFound) as exc:
            logger.info("chat {}: drafts refused ({}); the answer is edited in place instead", self.chat_id,
                        exc.message)
            self.drafting = False
            await super()._preview(text)
            if self.sent:
                await self._tell_once()
            return
        await self._tell_once()
