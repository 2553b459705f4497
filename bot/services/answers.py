"""How each kind of answer is produced and delivered, once credits are reserved.

A `Produce` is one request's work: call the manager with the hooks that log attempts and job ids,
deliver what came back, then close the request as served. Failures are raised to
`GenerationService._serve`, which refunds and words them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from html import escape

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message
from loguru import logger

from bot.i18n import Translate
from bot.services.bookkeeping import RequestBook
from bot.services.delivery import MediaFetchError, TextStreamer, media_bytes, send_media
from bot.services.progress import ProgressMessage, chat_action
from bot.services.telegram_retry import with_retry
from bot.settings import Settings
from providers.errors import AllProvidersFailed, Attempt, ProviderError
from providers.manager import ProviderManager
from providers.result import CallHooks, Result
from providers.types import Category, EditOp, GenerationRequest

# A streamed answer's first message waits this long, so a quick short answer is one message and no edits;
# "typing..." shows only when the first words take longer than this. Both halve Bot API calls under load.
FIRST_SHOW_S = 0.3
TYPING_AFTER_S = 0.5
CAPTION_CHARS = 900  # Telegram captions hold 1024 characters after entity parsing
ACTIONS = {Category.TEXT: "typing", Category.IMAGE: "upload_photo", Category.IMAGE_EDIT: "upload_photo",
           Category.VIDEO: "record_video", Category.AUDIO: "upload_voice"}


@dataclass(frozen=True, slots=True)
class Ask:
    """Who asked, where, and how to talk back."""

    bot: Bot
    chat_id: int
    user_id: int
    t: Translate
    reply_to: int | None = None
    update_id: int | None = None

    @classmethod
    def of(cls, message: Message, bot: Bot, t: Translate, update_id: int | None) -> Ask:
        user_id = message.from_user.id if message.from_user else message.chat.id
        return cls(bot, message.chat.id, user_id, t, message.message_id, update_id)

    async def say(self, text: str) -> None:
        try:
            await with_retry(lambda: self.bot.send_message(self.chat_id, text, parse_mode=ParseMode.HTML))
        except TelegramAPIError as exc:  # blocked the bot, chat gone: nothing more to do
            logger.info("could not tell user {}: {}", self.user_id, exc)


class AnswerFailed(Exception):
    """The provider answered, but there is nothing to show (empty) or the answer broke off after part of
    it was shown; `key` is the message to send, `kind` what the request log records."""

    def __init__(self, key: str, kind: str) -> None:
        super().__init__(kind)
        self.key = key
        self.kind = kind


@dataclass
class WorkState:
    """The request being served: its id, and which provider is at work now (for the progress message)."""

    request_id: int
    route: list[str]
    provider: str | None = None

    def __post_init__(self) -> None:
        if self.provider is None and self.route:
            self.provider = self.route[0]

    def failed(self, attempt: Attempt) -> None:
        if attempt.provider in self.route:
            later = self.route[self.route.index(attempt.provider) + 1:]
            self.provider = later[0] if later else attempt.provider


Produce = Callable[[CallHooks, WorkState], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Answers:
    settings: Settings
    manager: ProviderManager
    book: RequestBook

    def text(self, ask: Ask, label: str, request: GenerationRequest) -> Produce:
        async def produce(hooks: CallHooks, state: WorkState) -> None:
            streamer = TextStreamer(ask.bot, ask.chat_id, reply_to=ask.reply_to,
                                    interval=self.settings.stream_edit_interval,
                                    first_after=min(FIRST_SHOW_S, self.settings.stream_edit_interval))
            stream = self.manager.stream_text(request, label=label, hooks=hooks)
            text = ""
            try:
                async with chat_action(ask.bot, ask.chat_id, "typing", after=TYPING_AFTER_S):
                    async for delta in stream:
                        text += delta
                        await streamer.update(text)
            except (AllProvidersFailed, ProviderError) as exc:
                if not text.strip():
                    raise
                await streamer.finish(text)  # keep what was shown, whole, and say it broke off
                raise AnswerFailed("chat.cut_off", str(exc.kind)) from exc
            finally:
                await stream.aclose()
            if not text.strip() or stream.result is None:
                raise AnswerFailed("chat.empty_answer", "empty_answer")
            await streamer.finish(text)
            await self.book.served(state.request_id, stream.result, (ask.user_id, request.prompt, text))

        return produce

    def media(self, ask: Ask, label: str, request: GenerationRequest) -> Produce:
        async def produce(hooks: CallHooks, state: WorkState) -> None:
            async with self._working(ask, request, state):
                result = await self.manager.generate(request, label=label, hooks=hooks)
                files = await self._fetch(result)
            await self.deliver(ask, request, files)
            await self.book.served(state.request_id, result)

        return produce

    def resumed(self, ask: Ask, provider: str, job_id: str, model: str, request: GenerationRequest) -> Produce:
        async def produce(hooks: CallHooks, state: WorkState) -> None:
            async with self._working(ask, request, state):
                result = await self.manager.resume(provider, job_id, request, model, hooks=hooks)
                files = await self._fetch(result) if result.media else []
            if result.text and not files:
                await TextStreamer(ask.bot, ask.chat_id).finish(result.text)
            else:
                await self.deliver(ask, request, files)
            await self.book.served(state.request_id, result)

        return produce

    @contextlib.asynccontextmanager
    async def _working(self, ask: Ask, request: GenerationRequest, state: WorkState) -> AsyncIterator[None]:
        """Chat action all along; a progress message at once for long jobs, after a while for others."""
        long_job = request.category is Category.VIDEO or request.edit_op is EditOp.UPSCALE
        what = ask.t(f"progress.{request.category}")

        def render(elapsed: str) -> str:
            provider = escape(state.provider or ask.t("progress.starting"))
            return ask.t("progress.working", what=what, elapsed=elapsed, provider=provider)

        delay = 0.0 if long_job else self.settings.progress_after
        async with chat_action(ask.bot, ask.chat_id, ACTIONS[request.category]), \
                ProgressMessage(ask.bot, ask.chat_id, render, delay=delay, interval=self.settings.progress_interval):
            yield

    async def _fetch(self, result: Result) -> list[tuple[bytes, str]]:
        files = [(await media_bytes(m, self.manager.client, self.settings.max_media_bytes), m.mime)
                 for m in result.media]
        if not files:
            raise MediaFetchError(f"{result.provider} returned no media")
        return files

    async def deliver(self, ask: Ask, request: GenerationRequest, files: list[tuple[bytes, str]]) -> None:
        prompt = request.prompt.strip()
        caption = escape(prompt[:CAPTION_CHARS]) if prompt and request.category is not Category.AUDIO else None
        as_document = request.edit_op is EditOp.UPSCALE  # a photo would be recompressed, undoing the upscale
        for data, mime in files:
            await send_media(ask.bot, ask.chat_id, data, mime, caption=caption, reply_to=ask.reply_to,
                             as_document=as_document)
