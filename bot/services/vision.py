"""Photos in the chat: what the chat history keeps of them, and their bytes fetched when a request runs.

Bounded: the history never holds image bytes. A user turn that showed an image is stored with a first line
naming the image's type and Telegram file id (`[image image/jpeg AgACAgI...]`, see `remembered`). Read back
(`recalled`), only the newest such turn keeps its image, as a reference; older ones reach the model as
"[image]" and their text. Before the call (`fetch_images`) each referenced image is downloaded again from
Telegram, capped: so a request sends the model at most one image from the past besides the one just sent,
and a follow-up question ("and what colour is it?") still sees the photo it is about.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from loguru import logger

from bot.services.telegram_files import TooBig, download_capped
from providers import ChatMessage, GenerationRequest, ImagePart

_MARK = re.compile(r"^\[image (?P<mime>image/[\w.+-]+) (?P<ref>[\w-]+)\]\n")
FORGOTTEN = "[image]"  # what the model is told of an older image no longer sent


class PhotoGone(Exception):
    """The image just sent could not be downloaded from Telegram."""


def remembered(question: str, image: ImagePart) -> str:
    """The user turn as the history keeps it: a line naming the image, then the question."""
    return f"[image {image.mime} {image.ref}]\n{question}"


def recalled(past: Iterable[tuple[str, str]]) -> list[ChatMessage]:
    """(role, content) turns, oldest first, as messages: the newest image kept (by reference), older
    ones replaced by FORGOTTEN."""
    turns = list(past)
    newest = max((i for i, (role, content) in enumerate(turns) if role == "user" and _MARK.match(content)),
                 default=None)
    messages = []
    for i, (role, content) in enumerate(turns):
        mark = _MARK.match(content) if role == "user" else None
        if mark is None:
            messages.append(ChatMessage(role, content))
        elif i == newest:
            image = ImagePart(mark.group("mime"), ref=mark.group("ref"))
            messages.append(ChatMessage(role, content[mark.end():], (image,)))
        else:
            messages.append(ChatMessage(role, f"{FORGOTTEN}\n{content[mark.end():]}"))
    return messages


async def fetch_images(bot: Bot, request: GenerationRequest, limit: int) -> GenerationRequest:
    """`request` with the bytes of every image it references. The image of the last turn (the one just
    sent) must come: without it, PhotoGone. An older one that Telegram no longer gives is left out and the
    model told so."""
    if not any(image.ref and not image.data for image in request.chat_images()):
        return request
    messages = list(request.messages)
    for index, message in enumerate(messages):
        fetched = []
        for image in message.images:
            if image.data or not image.ref:
                fetched.append(image)
                continue
            data = await _download(bot, image.ref, limit)
            if data:
                fetched.append(dataclasses.replace(image, data=data))
            elif index == len(messages) - 1:
                raise PhotoGone(image.ref)
            else:
                message = dataclasses.replace(message, content=f"{FORGOTTEN}\n{message.content}")
        messages[index] = dataclasses.replace(message, images=tuple(fetched))
    return dataclasses.replace(request, messages=tuple(messages))


async def _download(bot: Bot, file_id: str, limit: int) -> bytes:
    try:
        return await download_capped(bot, file_id, limit)
    except (TooBig, TelegramAPIError) as exc:
        logger.info("image {} not fetched: {}", file_id[:24], type(exc).__name__)
        return b""
