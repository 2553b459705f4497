"""Signs of life while a request runs: chat actions, and a progress message for long jobs.

Both are background tasks bound to a `async with` block, so they stop (and the progress message is
deleted) however the block ends, cancellation included. Their failures never reach the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.types import Message
from loguru import logger


@contextlib.asynccontextmanager
async def chat_action(bot: Bot, chat_id: int, action: str, every: float = 4.0,
                      after: float = 0.0, thread_id: int | None = None) -> AsyncIterator[None]:
    """Keep `action` (typing, upload_photo, ...) showing while the body runs; Telegram drops it after 5 s.
    With `after`, nothing is sent for a body that ends (or shows its answer) sooner."""

    async def loop() -> None:
        await asyncio.sleep(after)
        while True:
            try:
                await bot.send_chat_action(chat_id, action, message_thread_id=thread_id)
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramAPIError as exc:
                logger.debug("chat action failed: {}", exc)
            await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def format_elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


class ProgressMessage:
    """After `delay` seconds, a message with the elapsed time and the provider at work, edited every
    `interval` seconds and deleted when the block ends (the result replaces it)."""

    def __init__(self, bot: Bot, chat_id: int, render: Callable[[str], str], *, delay: float,
                 interval: float, thread_id: int | None = None) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.thread_id = thread_id  # the forum topic the request came from (None: the chat itself)
        self.render = render  # elapsed "m:ss" -> the message's HTML
        self.delay = delay
        self.interval = interval
        self.message_id: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._sending: asyncio.Task[Message] | None = None
        self._started = time.monotonic()

    async def __aenter__(self) -> ProgressMessage:
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sending is not None and self.message_id is None:
            # cancelled while the first send was in flight: it may still land, and must then be deleted
            with contextlib.suppress(TelegramAPIError, asyncio.CancelledError):
                self.message_id = (await self._sending).message_id
        if self.message_id is not None:
            with contextlib.suppress(TelegramAPIError):
                await self.bot.delete_message(self.chat_id, self.message_id)

    def _text(self) -> str:
        return self.render(format_elapsed(time.monotonic() - self._started))

    async def _run(self) -> None:
        await asyncio.sleep(self.delay)
        last = ""
        while True:
            text = self._text()
            try:
                if self.message_id is None:
                    self._sending = asyncio.ensure_future(self.bot.send_message(self.chat_id, text,
                                                                                 message_thread_id=self.thread_id))
                    self.message_id = (await asyncio.shield(self._sending)).message_id
                elif text != last:
                    await self.bot.edit_message_text(text=text, chat_id=self.chat_id, message_id=self.message_id)
                last = text
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except TelegramAPIError as exc:
                logger.debug("progress message update failed: {}", exc)
            await asyncio.sleep(self.interval)
