"""/image, /video, /tts, and /edit on a photo (as its caption, or as a reply to it)."""

from __future__ import annotations

import dataclasses
import io
import re
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, Update
from loguru import logger

from bot.i18n import Translate
from bot.services.answers import Ask
from bot.services.generation import GenerationService
from db.repo.users import UserView
from providers.types import Category, EditOp, GenerationRequest

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the Bot API's getFile limit
OPS = {
    "erase": EditOp.ERASE, "inpaint": EditOp.INPAINT, "outpaint": EditOp.OUTPAINT,
    "remove_background": EditOp.REMOVE_BACKGROUND, "removebg": EditOp.REMOVE_BACKGROUND,
    "bg": EditOp.REMOVE_BACKGROUND, "remove-background": EditOp.REMOVE_BACKGROUND,
    "search_replace": EditOp.SEARCH_REPLACE, "replace": EditOp.SEARCH_REPLACE,
    "search-replace": EditOp.SEARCH_REPLACE, "upscale": EditOp.UPSCALE,
}
NEEDS_TEXT = {EditOp.INPAINT}
_REPLACE = re.compile(r"^(?P<old>.+?)\s*(?:\s(?:with|на)\s|->|→|=>)\s*(?P<new>.+)$", re.I | re.S)


def _ask(message: Message, bot: Bot, t: Translate, update: Update) -> Ask:
    return Ask.of(message, bot, t, update.update_id)


async def cmd_image(message: Message, command: CommandObject, bot: Bot, t: Translate, user: UserView,
                    generation: GenerationService, event_update: Update) -> None:
    request = GenerationRequest(Category.IMAGE, prompt=(command.args or "").strip())
    await generation.media(_ask(message, bot, t, event_update), user, request, "usage.image")


async def cmd_video(message: Message, command: CommandObject, bot: Bot, t: Translate, user: UserView,
                    generation: GenerationService, event_update: Update) -> None:
    request = GenerationRequest(Category.VIDEO, prompt=(command.args or "").strip())
    await generation.media(_ask(message, bot, t, event_update), user, request, "usage.video")


async def cmd_tts(message: Message, command: CommandObject, bot: Bot, t: Translate, user: UserView,
                  generation: GenerationService, event_update: Update) -> None:
    request = GenerationRequest(Category.AUDIO, prompt=(command.args or "").strip())
    await generation.media(_ask(message, bot, t, event_update), user, request, "usage.tts")


@dataclass(frozen=True, slots=True)
class EditCommand:
    op: EditOp
    prompt: str = ""
    search: str | None = None


def parse_edit(args: str | None) -> EditCommand | str:
    """The edit asked for, or the i18n key (with `{op}`) of what is wrong with it."""
    words = (args or "").strip().split(maxsplit=1)
    if not words:
        return "usage.edit"
    op = OPS.get(words[0].lower().replace("-", "_")) or OPS.get(words[0].lower())
    if op is None:
        return "usage.edit_unknown_op"
    rest = words[1].strip() if len(words) > 1 else ""
    if op is EditOp.SEARCH_REPLACE:
        match = _REPLACE.match(rest)
        if not match:
            return "usage.search_replace"
        return EditCommand(op, match.group("new").strip(), match.group("old").strip())
    if op in NEEDS_TEXT and not rest:
        return "usage.edit_needs_text"
    return EditCommand(op, rest)


def _photo_of(message: Message) -> tuple[str, int, str] | None:
    """(file id, size, mime) of the photo on the message or on the message it replies to."""
    for candidate in (message, message.reply_to_message):
        if candidate is None:
            continue
        if candidate.photo:
            biggest = candidate.photo[-1]
            return biggest.file_id, biggest.file_size or 0, "image/jpeg"
        document = candidate.document
        if document and (document.mime_type or "").startswith("image/"):
            return document.file_id, document.file_size or 0, document.mime_type or "image/png"
    return None


async def cmd_edit(message: Message, command: CommandObject, bot: Bot, t: Translate, user: UserView,
                   generation: GenerationService, event_update: Update) -> None:
    ask = _ask(message, bot, t, event_update)
    parsed = parse_edit(command.args)
    if isinstance(parsed, str):
        op_word = (command.args or "").split(maxsplit=1)[0] if command.args else ""
        usage = t("usage.edit") if parsed != "usage.edit" else ""
        await ask.say("\n\n".join(p for p in (t(parsed, op=escape(op_word[:40])), usage) if p))
        return
    photo = _photo_of(message)
    if photo is None:
        await ask.say(t("usage.edit"))
        return
    file_id, size, mime = photo
    request = GenerationRequest(Category.IMAGE_EDIT, prompt=parsed.prompt, image_mime=mime, edit_op=parsed.op,
                                search_prompt=parsed.search)
    # before the download: a busy user's photo would be fetched only to be refused
    if await generation.refused_as_busy(ask, user, request):
        return
    if size > DOWNLOAD_LIMIT:
        await ask.say(t("errors.photo_too_big"))
        return
    try:
        image = await download_capped(bot, file_id, DOWNLOAD_LIMIT)
    except TooBig:
        await ask.say(t("errors.photo_too_big"))
        return
    except TelegramAPIError as exc:
        logger.info("photo download failed for user {}: {}", user.tg_id, exc)
        image = b""
    if not image:
        await ask.say(t("errors.photo_failed"))
        return
    await generation.media(ask, user, dataclasses.replace(request, image=image), "usage.edit")


class TooBig(Exception):
    """The file is larger than the download cap."""


class _CappedBuffer(io.BytesIO):
    """A BytesIO that refuses to grow past `limit`: the download stops at the chunk that crosses it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: Buffer) -> int:
        if self.tell() + memoryview(data).nbytes > self.limit:
            raise TooBig
        return super().write(data)


async def download_capped(bot: Bot, file_id: str, limit: int) -> bytes:
    """The file's bytes, refused (TooBig) past `limit` even when Telegram does not say its size.

    getFile's file_size is checked first; when it is missing, the download itself is counted chunk by
    chunk, so a file larger than announced (or never announced) cannot fill the memory.
    """
    file = await bot.get_file(file_id)
    if file.file_size is not None and file.file_size > limit:
        raise TooBig
    if not file.file_path:
        return b""
    buffer = _CappedBuffer(limit)
    await bot.download_file(file.file_path, destination=buffer)
    return buffer.getvalue()

def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_image, Command("image"))
    built.message.register(cmd_video, Command("video"))
    built.message.register(cmd_tts, Command("tts"))
    built.message.register(cmd_edit, Command("edit"))
    return built
