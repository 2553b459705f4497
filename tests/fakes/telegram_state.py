"""Data and rules behind the fake Bot API: API errors, Telegram's HTML parse mode, stored messages and files.

The HTML checker follows tdlib's `parse_html` (the code behind the real Bot API): the same allowed tags, the
same error texts with UTF-8 byte offsets, entity offsets in UTF-16 code units. One deliberate difference:
a bare `&` that does not start an entity is an error here (the Bot API docs require `&amp;`; the real
server is lenient), so a bot that forgets to escape model output is caught by the tests.
"""

from __future__ import annotations

import html
import re
import struct
from dataclasses import dataclass, field
from typing import Any

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

_SIMPLE_TAGS = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
}
_ALLOWED_TAGS = {*_SIMPLE_TAGS, "a", "span", "pre", "code", "blockquote", "tg-emoji"}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[a-zA-Z][a-zA-Z0-9]{1,31};)")
_ATTR_RE = re.compile(r"""\s*([^\s=>]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")


class ApiError(Exception):
    """One Bot API failure: becomes {"ok": false, "error_code", "description", "parameters"?}."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            out["parameters"] = self.parameters
        return out


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


@dataclass
class _OpenTag:
    name: str
    start: int  # UTF-16 offset in the plain text
    attrs: dict[str, str]


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities of an HTML-formatted text, or ApiError "can't parse entities: ..."."""
    out: list[str] = []
    out_len = 0  # UTF-16 length of what is in `out`
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY_RE.match(text, i)
            decoded = html.unescape(m.group(0)) if m else ""
            if not m or decoded == m.group(0):
                raise _cant_parse(f"Unsupported HTML entity at byte offset {_byte_offset(text, i)}")
            out.append(decoded)
            out_len += utf16_len(decoded)
            i = m.end()
        elif ch != "<":
            out.append(ch)
            out_len += utf16_len(ch)
            i += 1
        elif text.startswith("</", i):
            i = _close_tag(text, i, stack, entities, out_len)
        else:
            tag, i = _open_tag(text, i, out_len)
            stack.append(tag)
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _cant_parse(what: str) -> ApiError:
    return bad_request(f"can't parse entities: {what}")


def _open_tag(text: str, begin: int, out_len: int) -> tuple[_OpenTag, int]:
    name_end = begin + 1
    while name_end < len(text) and not text[name_end].isspace() and text[name_end] != ">":
        name_end += 1
    if name_end >= len(text):
        raise _cant_parse(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
    name = text[begin + 1:name_end].lower()
    if name not in _ALLOWED_TAGS:
        raise _cant_parse(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, begin)}')
    end = text.find(">", name_end)
    if end < 0:
        raise _cant_parse(f"Unclosed start tag at byte offset {_byte_offset(text, begin)}")
    inner = text[begin + 1:end]
    attrs: dict[str, str] = {}
    for m in _ATTR_RE.finditer(inner[len(name):]):
        value = m.group(2) or ""
        if value[:1] in "\"'":
            value = value[1:-1]
        attrs[m.group(1).lower()] = html.unescape(value)
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise _cant_parse(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, begin)}')
    if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise _cant_parse(f"Custom emoji identifier expected at byte offset {_byte_offset(text, begin)}")
    return _OpenTag(name, out_len, attrs), end + 1


def _close_tag(text: str, begin: int, stack: list[_OpenTag], entities: list[dict[str, Any]],
               out_len: int) -> int:
    if not stack:
        raise _cant_parse(f"Unexpected end tag at byte offset {_byte_offset(text, begin)}")
    end = text.find(">", begin)
    name = text[begin + 2:end].strip().lower() if end >= 0 else ""
    if end < 0 or (name and not re.fullmatch(r"[^\s]+", name)):
        raise _cant_parse(f"Unclosed end tag at byte offset {_byte_offset(text, begin + 2)}")
    tag = stack.pop()
    if name and name != tag.name:
        raise _cant_parse(f'Unmatched end tag at byte offset {_byte_offset(text, begin)}, '
                          f'expected "</{tag.name}>", found "</{name}>"')
    length = out_len - tag.start
    if length > 0:
        entity = _entity(tag, length, entities)
        if entity is not None:
            entities.append(entity)
    return end + 1


def _entity(tag: _OpenTag, length: int, entities: list[dict[str, Any]]) -> dict[str, Any] | None:
    base: dict[str, Any] = {"offset": tag.start, "length": length}
    if tag.name in _SIMPLE_TAGS or tag.name == "span":
        return {"type": _SIMPLE_TAGS.get(tag.name, "spoiler"), **base}
    if tag.name == "a":
        return {"type": "text_link", **base, "url": tag.attrs.get("href", "")} if tag.attrs.get("href") else None
    if tag.name == "tg-emoji":
        return {"type": "custom_emoji", **base, "custom_emoji_id": tag.attrs["emoji-id"]}
    if tag.name == "blockquote":
        kind = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
        return {"type": kind, **base}
    if tag.name == "pre":
        # <pre><code class="language-x"> is one pre entity with a language: merge the inner code entity
        inner = next((e for e in entities if e["type"] == "code" and e["offset"] == tag.start
                      and e["length"] == length), None)
        if inner is not None:
            entities.remove(inner)
            if inner.get("_language"):
                return {"type": "pre", **base, "language": inner["_language"]}
        return {"type": "pre", **base}
    language = tag.attrs.get("class", "")
    code: dict[str, Any] = {"type": "code", **base}
    if language.startswith("language-"):
        code["_language"] = language.removeprefix("language-")
    return code


def public_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if not k.startswith("_")} for e in entities]


def check_text(text: str, parse_mode: str | None, *, caption: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """Validate a message text or caption the way the Bot API does; returns the plain text and entities."""
    plain, entities = (parse_html(text) if (parse_mode or "").lower() == "html" else (text, []))
    limit = CAPTION_LIMIT if caption else TEXT_LIMIT
    if utf16_len(plain) > limit:
        raise bad_request("message caption is too long" if caption else "message is too long")
    if not caption and not plain.strip():
        raise bad_request("message text is empty")
    return plain, public_entities(entities)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image; None when the bytes are not one."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return (1, 1)  # dimensions vary by VP8 flavour; "is a WebP" is what matters here
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        i += 2 + seg_len
    return None


@dataclass
class StoredFile:
    """A file the fake "has": uploaded by the bot or sent by a user; downloadable by file_path."""

    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    filename: str = ""
    mime_type: str = ""
    size_known: bool = True  # file_size is optional in the Bot API: False leaves it out everywhere

    def api(self) -> dict[str, Any]:
        sized = {"file_size": len(self.data)} if self.size_known else {}
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id, **sized, "file_path": self.file_path}


@dataclass
class Draft:
    """One sendMessageDraft call: the preview a private chat shows while the answer is being written."""

    chat_id: int
    draft_id: int
    plain: str  # the text as the user sees it ("" shows Telegram's "Thinking..." placeholder)
    thread_id: int | None
    at: float  # loop time


@dataclass
class SentMessage:
    """A message the bot sent, as it is now, with every text it had (history[0] is the original)."""

    chat_id: int
    message_id: int
    method: str  # sendMessage, sendPhoto, ...
    text: str | None = None  # the raw text/caption as sent (before parsing)
    parse_mode: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    history: list[str] = field(default_factory=list)
    history_at: list[float] = field(default_factory=list)  # loop time of each version in `history`
    media_kind: str | None = None  # photo, video, voice, audio, document
    file: StoredFile | None = None
    deleted: bool = False
    payload: dict[str, Any] = field(default_factory=dict)  # the Message object the API answered

    @property
    def plain(self) -> str:
        """The text (or caption) as the user sees it."""
        return str(self.payload.get("text", self.payload.get("caption", "")))

    @property
    def edits(self) -> int:
        return max(0, len(self.history) - 1)
