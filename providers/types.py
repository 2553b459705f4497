"""Plain data shared by adapters, the manager and their callers.

Money is integer micro-USD (1 USD = 1_000_000) everywhere; never float.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MICROS_PER_USD = 1_000_000


class Category(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    IMAGE_EDIT = "image_edit"
    VIDEO = "video"
    AUDIO = "audio"  # text-to-speech
    TRANSCRIPTION = "transcription"  # speech-to-text: `audio` in, text out


class EditOp(StrEnum):
    ERASE = "erase"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    REMOVE_BACKGROUND = "remove_background"
    SEARCH_REPLACE = "search_replace"
    UPSCALE = "upscale"
    INSTRUCT = "instruct"  # any other change, said in words ("make it night"): an instruction-following model


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image a chat message shows the model. Adapters send `data` in their API's own image format.

    `ref` is the caller's handle to fetch the bytes again (the bot keeps a Telegram file id in the chat
    history instead of the bytes); adapters never send it. An image whose `data` is still empty has not
    been fetched yet: the caller fills it before the call."""

    mime: str  # image/jpeg, image/png, image/webp, image/gif
    data: bytes = b""
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "user" | "assistant" | "system"
    content: str  # the text; with images, what is asked about them
    images: tuple[ImagePart, ...] = ()  # user turns only; a label that can see (`vision`) reads them


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What the caller wants; identical on every provider tried (fallback never changes it)."""

    category: Category
    prompt: str = ""
    messages: tuple[ChatMessage, ...] = ()  # text: the conversation; empty means [user: prompt]
    system: str | None = None
    max_tokens: int | None = None
    image: bytes | None = None  # image_edit: the source image
    image_mime: str = "image/png"
    mask: bytes | None = None
    edit_op: EditOp | None = None
    search_prompt: str | None = None  # search_replace: what to replace
    audio: bytes | None = None  # transcription: the recording
    audio_mime: str = "audio/ogg"  # a Telegram voice message is Opus in Ogg
    audio_seconds: float = 0.0  # transcription: the recording's length (what it is priced by)
    options: Mapping[str, Any] = field(default_factory=dict)  # size, aspect_ratio, voice, duration_s, ...

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        return self.messages or (ChatMessage("user", self.prompt),)

    def audio_type(self) -> str:
        """`audio_mime` without parameters, lower case (`audio/ogg; codecs=opus` -> `audio/ogg`)."""
        return self.audio_mime.split(";")[0].strip().lower()

    def chat_images(self) -> tuple[ImagePart, ...]:
        """Every image the conversation shows the model (a text request with images needs `vision`)."""
        return tuple(image for message in self.messages for image in message.images)

    def fingerprint(self, model: str = "") -> str:
        """Stable key of the normalized input: identical requests share one call / cache entry."""
        payload = {
            "c": str(self.category),
            "m": model,
            "p": " ".join(self.prompt.split()),
            "h": [[m.role, m.content, *(_image_key(i) for i in m.images)] for m in self.messages],
            "s": self.system,
            "t": self.max_tokens,
            "i": hashlib.sha256(self.image).hexdigest() if self.image else None,
            "k": hashlib.sha256(self.mask).hexdigest() if self.mask else None,
            "e": str(self.edit_op) if self.edit_op else None,
            "r": self.search_prompt,
            "a": [hashlib.sha256(self.audio).hexdigest(), self.audio_mime, self.audio_seconds] if self.audio else None,
            "o": sorted((str(k), repr(v)) for k, v in self.options.items()),
        }
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(raw).hexdigest()


def _image_key(image: ImagePart) -> str:
    return hashlib.sha256(image.data).hexdigest() if image.data else f"ref:{image.ref}"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    seconds: float = 0.0  # video / audio duration; transcription: the recording's length
    characters: int = 0  # text-to-speech input

    def as_dict(self) -> dict[str, float | int]:
        return {k: v for k, v in (
            ("input_tokens", self.input_tokens), ("output_tokens", self.output_tokens),
            ("images", self.images), ("seconds", self.seconds), ("characters", self.characters),
        ) if v}


@dataclass(frozen=True, slots=True)
class Media:
    mime: str  # image/png, video/mp4, audio/mpeg, ...
    data: bytes | None = None
    url: str | None = None  # the caller downloads it (provider URLs expire)


@dataclass(frozen=True, slots=True)
class AdapterResult:
    """What one adapter call produced. The manager turns it into a `Result`."""

    model: str
    text: str | None = None
    media: tuple[Media, ...] = ()
    usage: Usage = Usage()
    cost_micros: int | None = None  # the provider's own reported cost wins over the price table
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a text stream: a delta, and on the last chunk the real usage."""

    text: str = ""
    usage: Usage | None = None
    cost_micros: int | None = None
    model: str | None = None
