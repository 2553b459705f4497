"""Getting answers to the user: a streamed text reply edited in place, and media uploads.

Telegram limits edits per chat, so a stream is edited at most once per interval; a `retry_after` from
Telegram (or from the send limiter, when the chat's next slot is further away than the interval) pauses
intermediate edits for that long, and the final text is always delivered (waiting as
long as Telegram asks). Text that grows past one message continues in a new message. A part Telegram
still cannot parse is resent as plain text. Media from a provider (bytes, or a URL downloaded here as the
outbound policy of providers.outbound allows, size-capped) is uploaded as a photo, video, voice or audio
message; see `send_media` for the choices.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import mimetypes
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError, TelegramRetryAfter
from aiogram.types import BufferedInputFile, Message, ReplyParameters
from loguru import logger

from bot.services.streamfmt import StreamLayout
from bot.services.telegram_retry import patience, with_retry
from bot.services.textfmt import html_to_plain
from providers.outbound import FetchError, OutboundPolicy
from providers.types import Media


def _unparsable(exc: TelegramBadRequest) -> bool:
    return "can't parse" in exc.message.lower() or "parse entities" in exc.message.lower()


def _not_modified(exc: TelegramBadRequest) -> bool:
    return "not modified" in exc.message.lower()


MIN_EDIT_WAIT_S = 0.25  # an intermediate edit may wait this long for its slot, however short the interval


async def _nothing_first() -> None:
    return None


@dataclass
class _Sent:
    message_id: int
    html: str


class TextStreamer:
    """One reply that grows: `update(text)` as deltas arrive (throttled), then `finish(text)`.

    `before_first` runs once, before the first message is sent, and whatever it raises stops the reply
    there; `after_first` once that message is sent. The request's owner uses them to make sure the answer
    is still its own to deliver, and to record that part of it reached the user."""

    def __init__(self, bot: Bot, chat_id: int, *, reply_to: int | None = None, thread_id: int | None = None,
                 interval: float = 1.0, first_after: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 before_first: Callable[[], Awaitable[None]] = _nothing_first,
                 after_first: Callable[[], Awaitable[None]] = _nothing_first) -> None:
        self.before_first, self.after_first = before_first, after_first
        self._cleared = False
        self.bot = bot
        self.chat_id = chat_id
        self.reply_to = reply_to
        self.thread_id = thread_id  # the forum topic the answer belongs in (None: the chat itself)
        self.interval = interval
        self.clock = clock
        self.sent: list[_Sent] = []
        self._last_push = -1e9
        self.first_after = first_after  # hold the first message this long: a quick answer needs no edits
        self._first_seen: float | None = None
        self._blocked_until = 0.0
        self._layout = StreamLayout()
        self._settled = 0  # leading messages that show their final part: never looked at again

    @property
    def message_ids(self) -> list[int]:
        return [s.message_id for s in self.sent]

    async def update(self, text: str) -> None:
        """Show `text` so far, unless an edit was made too recently or Telegram asked us to wait."""
        now = self.clock()
        if not text.strip():
            return
        if self._first_seen is None:
            self._first_seen = now
        if now < self._blocked_until or now - self._last_push < self.interval \
                or now - self._first_seen < self.first_after:
            return
        self._last_push = now
        try:
            # an intermediate edit is not worth waiting for: the send limiter (bot.shared.limiter) raises
            # TelegramRetryAfter instead of holding it past the interval, and no 429 is sent again
            with patience(attempts=1, max_wait_s=max(self.interval, MIN_EDIT_WAIT_S)):
                await self._preview(text)
        except TelegramRetryAfter as exc:
            self._blocked_until = self.clock() + exc.retry_after  # skip edits; finish() waits it out
        except (TelegramNetworkError, TelegramBadRequest) as exc:
            logger.debug("intermediate edit skipped: {}", exc)

    async def _preview(self, text: str) -> None:
        """How the text so far is shown before it is complete: here the messages edited in place
        (`bot.services.drafts` shows a draft instead)."""
        await self._show(text)

    async def finish(self, text: str) -> list[int]:
        """Deliver the final `text` whatever Telegram throws at us; returns the message ids."""
        wait = self._blocked_until - self.clock()
        if wait > 0:
            await asyncio.sleep(wait)
        await with_retry(lambda: self._show(text))
        return self.message_ids

    def layout(self, text: str) -> list[str]:
        """The messages `text` is shown as: the synchronous formatting that each edit runs. Full messages
        are final and kept; only the open end of the text is formatted again (see streamfmt)."""
        return self._layout.parts(text)

    async def _show(self, text: str) -> None:
        parts = self.layout(text)
        for index in range(self._settled, len(parts)):
            part = parts[index]
            if index < len(self.sent):
                if self.sent[index].html != part:
                    await self._edit(index, part)
            else:
                message = await self._send(part)
                self.sent.append(_Sent(message.message_id, part))
            if index == self._settled and index < self._layout.frozen:
                self._settled += 1  # sent or edited to its final part: no edit will touch it again

    async def _send(self, part: str) -> Message:
        if self._cleared:
            return await self._send_part(part)
        await self.before_first()
        self._cleared = True
        message = await self._send_part(part)
        await self.after_first()
        return message

    async def _send_part(self, part: str) -> Message:
        reply = ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True) \
            if self.reply_to and not self.sent else None
        try:
            return await self.bot.send_message(self.chat_id, part, parse_mode=ParseMode.HTML,
                                               reply_parameters=reply, message_thread_id=self.thread_id)
        except TelegramBadRequest as exc:
            if not _unparsable(exc):
                raise
            logger.warning("telegram could not parse a reply part; sending it as plain text: {}", exc.message)
            return await self.bot.send_message(self.chat_id, html_to_plain(part), parse_mode=None,
                                               reply_parameters=reply, message_thread_id=self.thread_id)

    async def _edit(self, index: int, part: str) -> None:
        sent = self.sent[index]
        try:
            await self.bot.edit_message_text(text=part, chat_id=self.chat_id, message_id=sent.message_id,
                                             parse_mode=ParseMode.HTML)
        except TelegramBadRequest as exc:
            if _not_modified(exc):
                pass
            elif _unparsable(exc):
                logger.warning("telegram could not parse an edited part; using plain text: {}", exc.message)
                with contextlib.suppress(TelegramBadRequest):
                    await self.bot.edit_message_text(text=html_to_plain(part), chat_id=self.chat_id,
                                                     message_id=sent.message_id, parse_mode=None)
            elif "not found" in exc.message.lower():  # the user deleted it: carry on in a new message
                sent.message_id = (await self._send(part)).message_id
            else:
                raise
        sent.html = part


# --- media ---------------------------------------------------------------------------------

PHOTO_MAX_BYTES = 10 * 1024 * 1024  # Telegram's limit for sendPhoto; larger images go as documents
# sendVoice plays OGG/Opus, MP3 and M4A inline as a voice message: text-to-speech reads best that way.
# Other audio (wav, flac) and users who forbid voice messages get sendAudio instead.
VOICE_MIMES = frozenset({"audio/ogg", "audio/opus", "audio/mpeg", "audio/mp3", "audio/mp4", "audio/m4a",
                         "audio/x-m4a"})


class MediaFetchError(Exception):
    """Provider media could not be fetched (refused by the outbound policy, HTTP failure, too large, no content)."""


async def media_bytes(media: Media, client: httpx.AsyncClient, max_bytes: int, timeout_s: float = 120.0,
                      policy: OutboundPolicy | None = None) -> bytes:
    """The media's bytes: given inline, a `data:` URL, or downloaded (provider URLs expire), size-capped.

    A URL is fetched only as `policy` allows (providers.outbound): the default trusts no origin, so loopback
    and private addresses are refused. `timeout_s` is the deadline of the whole download."""
    if media.data is not None:
        data = media.data
    elif media.url and media.url.startswith("data:"):
        try:
            data = base64.b64decode(media.url.split(",", 1)[1], validate=False)
        except (IndexError, ValueError) as exc:
            raise MediaFetchError("malformed data URL") from exc
    elif media.url:
        try:
            data = await (policy or OutboundPolicy()).fetch(client, media.url, max_bytes=max_bytes,
                                                            deadline_s=timeout_s)
        except FetchError as exc:  # its message names the host only: signed URLs carry tokens
            raise MediaFetchError(str(exc)) from exc
    else:
        raise MediaFetchError("the provider returned media without data or URL")
    if len(data) > max_bytes:
        raise MediaFetchError(f"media is {len(data)} bytes, over the {max_bytes} byte cap")
    if not data:
        raise MediaFetchError("the provider returned empty media")
    return data


def _filename(mime: str) -> str:
    ext = {"audio/mpeg": ".mp3", "image/jpeg": ".jpg", "audio/ogg": ".ogg"}.get(mime) \
        or mimetypes.guess_extension(mime) or ".bin"
    return "result" + ext


async def send_media(bot: Bot, chat_id: int, data: bytes, mime: str, *, caption: str | None = None,
                     reply_to: int | None = None, as_document: bool = False, thread_id: int | None = None) -> Message:
    """Upload `data` as the message type that fits its mime; falls back to a document when refused."""
    file = BufferedInputFile(data, _filename(mime))
    common: dict[str, Any] = {"caption": caption, "parse_mode": ParseMode.HTML, "message_thread_id": thread_id}
    if reply_to:
        common["reply_parameters"] = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
    kind = mime.split("/", 1)[0]

    async def document() -> Message:
        return await with_retry(lambda: bot.send_document(chat_id, file, **common))

    try:
        if as_document or (kind == "image" and len(data) > PHOTO_MAX_BYTES):
            return await document()
        if kind == "image":
            return await with_retry(lambda: bot.send_photo(chat_id, file, **common))
        if kind == "video":
            return await with_retry(lambda: bot.send_video(chat_id, file, supports_streaming=True, **common))
        if mime in VOICE_MIMES:
            try:
                return await with_retry(lambda: bot.send_voice(chat_id, file, **common))
            except TelegramBadRequest as exc:  # VOICE_MESSAGES_FORBIDDEN by the user's privacy settings
                logger.info("voice refused ({}); sending as audio", exc.message)
        if kind == "audio":
            return await with_retry(lambda: bot.send_audio(chat_id, file, **common))
        return await document()
    except TelegramBadRequest as exc:  # e.g. PHOTO_INVALID_DIMENSIONS: a document always goes through
        logger.info("{} upload refused ({}); sending as a document", kind, exc.message)
        return await document()
