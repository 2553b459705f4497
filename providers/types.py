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


class EditOp(StrEnum):
    ERASE = "erase"
    INPAINT = "inpaint"
    OUTPAINT = "outpaint"
    REMOVE_BACKGROUND = "remove_background"
    SEARCH_REPLACE = "search_replace"
    UPSCALE = "upscale"


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "user" | "assistant" | "system"
    content: str


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
    options: Mapping[str, Any] = field(default_factory=dict)  # size, aspect_ratio, voice, duration_s, ...

    def chat_messages(self) -> tuple[ChatMessage, ...]:
        return self.messages or (ChatMessage("user", self.prompt),)

    def fingerprint(self, model: str = "") -> str:
        """Stable key of the normalized input: identical requests share one call / cache entry."""
        payload = {
            "c": str(self.category),
            "m": model,
            "p": " ".join(self.prompt.split()),
            "h": [[m.role, m.content] for m in self.messages],
            "s": self.system,
            "t": self.max_tokens,
            "i": hashlib.sha256(self.image).hexdigest() if self.image else None,
            "k": hashlib.sha256(self.mask).hexdigest() if self.mask else None,
            "e": str(self.edit_op) if self.edit_op else None,
            "r": self.search_prompt,
            "o": sorted((str(k), repr(v)) for k, v in self.options.items()),
        }
        raw = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    seconds: float = 0.0  # video / audio duration
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
