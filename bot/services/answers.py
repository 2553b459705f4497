"""How each kind of answer is produced and delivered, once its credits are reserved.

A `Work` calls the manager with the hooks that log attempts and job ids, delivers what came back, and
returns what it delivered. It never decides money and never closes the request: it asks its `Gate`
before the first part of the answer goes out (`delivering`, which fails when the request was canceled
or is no longer this process's) and says when part of it reached the user (`delivered`). The owner of
the request's life (`bot.services.lifecycle`) turns what a work returns or raises into one terminal state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from typing import Protocol

import httpx
from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message
from loguru import logger

from bot.i18n import Translate
from bot.services.captions import caption_html
from bot.services.delivery import MediaFetchError, TextStreamer, media_bytes, send_media
from bot.services.drafts import DraftStreamer, is_private
from bot.services.progress import ProgressMessage, chat_action
from bot.services.telegram_files import DOWNLOAD_LIMIT
from bot.services.telegram_retry import with_retry
from bot.services.vision import PhotoGone, fetch_images
from bot.settings import Settings
from db.repo.history import Conversation
from providers import (
    AllProvidersFailed,
    Attempt,
    CallHooks,
    Category,
    ChatMessage,
    EditOp,
    GenerationRequest,
    ProviderError,
    ProviderManager,
    Result,
)
from providers.outbound import OutboundPolicy

# A streamed answer's first message waits this long, so a quick short answer is one message and no edits;
# "typing..." shows only when the first words take longer than this. Both halve Bot API calls under load.
FIRST_SHOW_S = 0.3
TYPING_AFTER_S = 0.5
ACTIONS = {Category.TEXT: "typing", Category.IMAGE: "upload_photo", Category.IMAGE_EDIT: "upload_photo",
           Category.VIDEO: "record_video", Category.AUDIO: "upload_voice", Category.TRANSCRIPTION: "typing"}


@dataclass(frozen=True, slots=True)
class Ask:
    """Who asked, where, and how to talk back."""

    bot: Bot
    chat_id: int
    user_id: int
    t: Translate
    reply_to: int | None = None
    update_id: int | None = None
    thread_id: int | None = None  # the forum topic asked in: every answer goes there
    received: float = field(default_factory=time.monotonic, compare=False)  # when this process took it on

    @classmethod
    def of(cls, message: Message, bot: Bot, t: Translate, update_id: int | None) -> Ask:
        user_id = message.from_user.id if message.from_user else message.chat.id
        thread_id = message.message_thread_id if message.is_topic_message else None
        return cls(bot, message.chat.id, user_id, t, message.message_id, update_id, thread_id)

    @property
    def conversation(self) -> Conversation:
        """The chat history this ask reads and adds to: its chat, or its forum topic."""
        return Conversation(self.chat_id, self.thread_id or 0)

    async def say(self, text: str) -> bool:
        """Send `text`; False when Telegram would not take it (blocked the bot, chat gone)."""
        try:
            await with_retry(lambda: self.bot.send_message(self.chat_id, text, parse_mode=ParseMode.HTML,
                                                           message_thread_id=self.thread_id))
        except TelegramAPIError as exc:
            logger.info("could not tell user {}: {}", self.user_id, exc)
            return False
        return True


class AnswerFailed(Exception):
    """The provider answered, but there is nothing to show (empty), the answer broke off after part of it
    was shown, or the user stopped it while it was shown; `key` is the message to send, `kind` what the
    request log records."""

    def __init__(self, key: str, kind: str, *, canceled: bool = False) -> None:
        super().__init__(kind)
        self.key = key
        self.kind = kind
        self.canceled = canceled


class Gate(Protocol):
    """The owner's say on delivery (see the module docstring)."""

    async def delivering(self) -> None: ...

    async def delivered(self) -> None: ...

    @property
    def stop_requested(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Delivered:
    result: Result
    exchange: tuple[Conversation, int, str, str] | None = None  # (where, who, question, answer): chat history


@dataclass
class WorkState:
    """Which provider is at work now (for the progress message)."""

    route: list[str]
    provider: str | None = None

    def __post_init__(self) -> None:
        if self.provider is None and self.route:
            self.provider = self.route[0]

    def failed(self, attempt: Attempt) -> None:
        if attempt.provider in self.route:
            later = self.route[self.route.index(attempt.provider) + 1:]
            self.provider = later[0] if later else attempt.provider


Work = Callable[[CallHooks, Gate, WorkState], Awaitable[Delivered]]


@dataclass(frozen=True, slots=True)
class Answers:
    settings: Settings
    manager: ProviderManager
    media_client: httpx.AsyncClient  # the bot's own: provider media URLs are fetched here, size-capped

    def text(self, ask: Ask, label: str, request: GenerationRequest) -> Work:
        async def work(hooks: CallHooks, gate: Gate, state: WorkState) -> Delivered:
            asked = await self._with_images(ask, request)
            # a private chat sees a native draft grow; elsewhere the reply is edited in place
            kind = DraftStreamer if self.settings.stream_drafts and is_private(ask.chat_id) else TextStreamer
            streamer = kind(ask.bot, ask.chat_id, reply_to=ask.reply_to, thread_id=ask.thread_id,
                            interval=self.settings.stream_edit_interval,
                            first_after=min(FIRST_SHOW_S, self.settings.stream_edit_interval),
                            before_first=gate.delivering, after_first=gate.delivered)
            stream = self.manager.stream_text(asked, label=label, hooks=hooks)
            text = ""
            try:
                async with chat_action(ask.bot, ask.chat_id, "typing", after=TYPING_AFTER_S, thread_id=ask.thread_id):
                    async for delta in stream:
                        text += delta
                        await streamer.update(text)
                        if gate.stop_requested:
                            await streamer.finish(text)
                            raise AnswerFailed("cancel.stopped", "canceled", canceled=True)
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
            return Delivered(stream.result, (ask.conversation, ask.user_id, request.prompt, text))

        return work

    async def _with_images(self, ask: Ask, request: GenerationRequest) -> GenerationRequest:
        """The request with the bytes of the images it shows (bot.services.vision: at most the newest one
        from the past, and the one just sent, which must come)."""
        try:
            return await fetch_images(ask.bot, request, DOWNLOAD_LIMIT)
        except PhotoGone as exc:
            raise AnswerFailed("errors.photo_failed", "photo_fetch") from exc

    def voice(self, ask: Ask, label: str, request: GenerationRequest, transcriber: str) -> Work:
        """A voice message: transcribed with the `transcriber` label first, the transcript shown, then answered
        as a chat message with `label` (the transcript after `request.prompt`: in a group, the sender's name).
        One request: one reservation of both labels' credits, one close (a failure at either step refunds
        both); its cost is both calls'."""
        async def work(hooks: CallHooks, gate: Gate, state: WorkState) -> Delivered:
            listening = GenerationRequest(Category.TRANSCRIPTION, audio=request.audio, audio_mime=request.audio_mime,
                                          audio_seconds=request.audio_seconds)
            async with chat_action(ask.bot, ask.chat_id, "typing", thread_id=ask.thread_id):
                heard = await self.manager.generate(listening, label=transcriber, hooks=hooks)
            transcript = (heard.text or "").strip()
            if not transcript:
                raise AnswerFailed("chat.nothing_heard", "empty_transcript")
            await ask.say(ask.t("chat.heard", text=escape(transcript)))
            said = f"{request.prompt} {transcript}" if request.prompt else transcript
            question = dataclasses.replace(request, prompt=said, audio=None,
                                           messages=(*request.messages, ChatMessage("user", said)))
            answered = await self.text(ask, label, question)(hooks, gate, state)
            cost = answered.result.cost_micros + heard.cost_micros
            return dataclasses.replace(answered, result=dataclasses.replace(answered.result, cost_micros=cost))

        return work

    def media(self, ask: Ask, label: str, request: GenerationRequest) -> Work:
        async def work(hooks: CallHooks, gate: Gate, state: WorkState) -> Delivered:
            async with self._working(ask, request, state):
                result = await self.manager.generate(request, label=label, hooks=hooks)
                files = await self._fetch(result)
            await self.deliver(ask, request, files, gate)
            return Delivered(result)

        return work

    def resumed(self, ask: Ask, provider: str, job_id: str, model: str, request: GenerationRequest) -> Work:
        async def work(hooks: CallHooks, gate: Gate, state: WorkState) -> Delivered:
            async with self._working(ask, request, state):
                result = await self.manager.resume(provider, job_id, request, model, hooks=hooks)
                files = await self._fetch(result) if result.media else []
            if result.text and not files:
                await TextStreamer(ask.bot, ask.chat_id, thread_id=ask.thread_id, before_first=gate.delivering,
                                   after_first=gate.delivered).finish(result.text)
            else:
                await self.deliver(ask, request, files, gate)
            return Delivered(result)

        return work

    @contextlib.asynccontextmanager
    async def _working(self, ask: Ask, request: GenerationRequest, state: WorkState) -> AsyncIterator[None]:
        """Chat action all along; a progress message at once for long jobs, after a while for others."""
        long_job = request.category is Category.VIDEO or request.edit_op is EditOp.UPSCALE
        what = ask.t(f"progress.{request.category}")

        def render(elapsed: str) -> str:
            provider = escape(state.provider or ask.t("progress.starting"))
            return ask.t("progress.working", what=what, elapsed=elapsed, provider=provider)

        delay = 0.0 if long_job else self.settings.progress_after
        async with chat_action(ask.bot, ask.chat_id, ACTIONS[request.category], thread_id=ask.thread_id), \
                ProgressMessage(ask.bot, ask.chat_id, render, delay=delay, interval=self.settings.progress_interval,
                                thread_id=ask.thread_id):
            yield

    async def _fetch(self, result: Result) -> list[tuple[bytes, str]]:
        # the configured providers' own origins are trusted; any other URL must be https to a public address
        policy = OutboundPolicy(self.manager.allowed_origins())
        files = [(await media_bytes(m, self.media_client, self.settings.max_media_bytes, policy=policy), m.mime)
                 for m in result.media]
        if not files:
            raise MediaFetchError(f"{result.provider} returned no media")
        return files

    async def deliver(self, ask: Ask, request: GenerationRequest, files: list[tuple[bytes, str]],
                      gate: Gate) -> None:
        prompt = request.prompt.strip()
        caption = caption_html(prompt) if prompt and request.category is not Category.AUDIO else None
        as_document = request.edit_op is EditOp.UPSCALE  # a photo would be recompressed, undoing the upscale
        await gate.delivering()
        for index, (data, mime) in enumerate(files):
            await send_media(ask.bot, ask.chat_id, data, mime, caption=caption, reply_to=ask.reply_to,
                             as_document=as_document, thread_id=ask.thread_id)
            if index == 0:
                await gate.delivered()
