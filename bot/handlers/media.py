"""/image, /video, /tts, and /edit on a photo (as its caption, or as a reply to it); a photo with any other
caption (or none) is a question about it, and a voice or audio message is transcribed and answered. In a
group these are served as in a private chat when they are addressed to the bot (a caption that mentions
it, a reply to its message: `bot.addressing`; the rest never gets here), asked as group messages are: a
caption read by `group_question`, a transcript signed with the sender's name.

`/edit <op> [text]` names an operation in the words people type ("remove background", "remove bg",
"search and replace", "upscale x2", "extend"); anything else after /edit is an instruction
(`/edit make it night`: EditOp.INSTRUCT), served by an instruction-following model.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from html import escape
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, Update
from loguru import logger

from bot.addressing import GROUP_CHATS, group_question, signature
from bot.i18n import Translate
from bot.services.answers import Ask
from bot.services.generation import GenerationService
from bot.services.telegram_files import DOWNLOAD_LIMIT, TooBig, download_capped
from db.repo.users import UserView
from providers.types import Category, EditOp, GenerationRequest, ImagePart

__all__ = ["DOWNLOAD_LIMIT", "EditCommand", "TooBig", "download_capped", "parse_edit", "router"]

# The words that name an operation, as people type them (after lower-casing; "-" and "_" read as spaces).
OPS = {
    "erase": EditOp.ERASE, "inpaint": EditOp.INPAINT, "outpaint": EditOp.OUTPAINT, "extend": EditOp.OUTPAINT,
    "remove background": EditOp.REMOVE_BACKGROUND, "removebg": EditOp.REMOVE_BACKGROUND,
    "remove bg": EditOp.REMOVE_BACKGROUND, "bg": EditOp.REMOVE_BACKGROUND,
    "search replace": EditOp.SEARCH_REPLACE, "search and replace": EditOp.SEARCH_REPLACE,
    "replace": EditOp.SEARCH_REPLACE, "upscale": EditOp.UPSCALE,
}
_LONGEST_FIRST = sorted(OPS, key=len, reverse=True)
_SCALE = re.compile(r"^[x×](?P<n>[2-8])\b\s*|^(?P<m>[2-8])[x×]\b\s*", re.I)
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
    options: dict[str, Any] = field(default_factory=dict)  # upscale: {"scale": 2}


def _named_op(text: str) -> tuple[EditOp, str] | None:
    """The operation `text` starts with and the rest of it, or None when it names none."""
    plain = " ".join(text.lower().replace("-", " ").replace("_", " ").split())
    for name in _LONGEST_FIRST:
        if plain == name or plain.startswith(name + " "):
            return OPS[name], _after_words(text, len(name.split()))
    return None


def _after_words(text: str, n: int) -> str:
    """`text` without its first `n` words ("-" and "_" join words, as in remove-background)."""
    parts = re.split(r"([\s_-]+)", text.strip())
    words = 0
    for i in range(0, len(parts), 2):
        if parts[i]:
            words += 1
        if words == n:
            return "".join(parts[i + 1:]).lstrip(" _-\t\n")
    return ""


def parse_edit(args: str | None) -> EditCommand | str:
    """The edit asked for, or the i18n key (with `{op}`) of what is wrong with it. Words that name no
    operation are an instruction (`instruct`)."""
    text = (args or "").strip()
    if not text:
        return "usage.edit"
    named = _named_op(text)
    if named is None:
        return EditCommand(EditOp.INSTRUCT, text)
    op, rest = named
    if op is EditOp.UPSCALE and (scale := _SCALE.match(rest)):
        return EditCommand(op, rest[scale.end():].strip(), options={"scale": int(scale.group("n") or scale.group("m"))})
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
                                search_prompt=parsed.search, options=parsed.options)
    # before the download: a busy user's photo would be fetched only to be refused
    if await generation.refused_as_busy(ask, user, request):
        return
    image = await _download(ask, bot, file_id, size, "photo")
    if image is not None:
        await generation.media(ask, user, dataclasses.replace(request, image=image), "usage.edit")


async def _download(ask: Ask, bot: Bot, file_id: str, size: int | None, what: str) -> bytes | None:
    """A user's file from Telegram, at most DOWNLOAD_LIMIT bytes (counted while it arrives, since Telegram
    may not say its size); None after telling the user it is too big (`errors.<what>_too_big`) or could not
    be fetched (`errors.<what>_failed`)."""
    if (size or 0) > DOWNLOAD_LIMIT:
        await ask.say(ask.t(f"errors.{what}_too_big"))
        return None
    try:
        data = await download_capped(bot, file_id, DOWNLOAD_LIMIT)
    except TooBig:
        await ask.say(ask.t(f"errors.{what}_too_big"))
        return None
    except TelegramAPIError as exc:
        logger.info("{} download failed for user {}: {}", what, ask.user_id, exc)
        data = b""
    if not data:
        await ask.say(ask.t(f"errors.{what}_failed"))
        return None
    return data


async def on_photo(message: Message, bot: Bot, t: Translate, user: UserView, generation: GenerationService,
                   event_update: Update) -> None:
    """A photo (or an image sent as a file) whose caption is not /edit: a chat message with the image. Only
    its Telegram file id travels; the bytes are fetched when the request runs (bot.services.vision)."""
    ask = _ask(message, bot, t, event_update)
    photo = _photo_of(message)
    if photo is None:
        return
    file_id, size, mime = photo
    if size > DOWNLOAD_LIMIT:
        await ask.say(t("errors.photo_too_big"))
        return
    await generation.chat_photo(ask, user, await _photo_question(message, bot, t), ImagePart(mime, ref=file_id))


async def _photo_question(message: Message, bot: Bot, t: Translate) -> str:
    """The caption (in a group: as chat messages are read there, `group_question`)."""
    if message.chat.type not in GROUP_CHATS:
        return message.caption or ""
    return group_question(message, await bot.me(), t("chat.photo_question"))


async def on_voice(message: Message, bot: Bot, t: Translate, user: UserView, generation: GenerationService,
                   event_update: Update) -> None:
    """A voice or audio message: downloaded (capped), transcribed, answered as chat."""
    ask = _ask(message, bot, t, event_update)
    recording = message.voice or message.audio
    if recording is None:
        return
    # the prompt is what the transcript follows: in a group, the sender's name (GenerationService.voice)
    request = GenerationRequest(Category.TEXT, prompt=signature(message) if message.chat.type in GROUP_CHATS else "",
                                audio_mime=recording.mime_type or "audio/ogg",
                                audio_seconds=float(recording.duration or 0))
    if await generation.refused_as_busy(ask, user, request):  # before the download, as /edit does
        return
    audio = await _download(ask, bot, recording.file_id, recording.file_size, "voice")
    if audio is not None:
        await generation.voice(ask, user, dataclasses.replace(request, audio=audio))


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_image, Command("image"))
    built.message.register(cmd_video, Command("video"))
    built.message.register(cmd_tts, Command("tts"))
    built.message.register(cmd_edit, Command("edit"))
    people = F.chat.type.in_({ChatType.PRIVATE, *GROUP_CHATS})  # not channels
    built.message.register(on_photo, people, F.photo | F.document.mime_type.startswith("image/"))
    built.message.register(on_voice, people, F.voice | F.audio)
    return built
