"""The generation queue of the distributed mode: fronts enqueue reserved requests, workers run them.

A real broker, not a home-made one: taskiq over a Redis stream (`taskiq_redis.RedisStreamBroker`), a
consumer group with acknowledgements. A message is acknowledged when its task has ended, so a worker
killed before it took the request leaves the message to be delivered again; one killed after it took the
request leaves a lease that runs out, and a worker's sweeper resumes the provider job or refunds.

What travels is a `Job`: the request id (its row is the truth about money and state), who asked, the
label, and the request itself with the conversation the front read in the reservation's transaction.
Images in the conversation travel as references (Telegram file ids) unless their bytes are already there;
a voice message's recording travels whole, with its transcription label (`transcriber`).
A message delivered twice is harmless: a worker takes a request with one guarded update
(`reserved -> running`), and a second delivery finds it taken.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

from providers import Category, ChatMessage, EditOp, GenerationRequest, ImagePart

QUEUE_OWNER = "queue"  # the owner of a reserved request waiting in the queue: no process holds it yet
TASK_NAME = "bot.run_request"
WorkKind = Literal["text", "media", "voice"]


@dataclass(frozen=True, slots=True)
class Job:
    request_id: int
    user_id: int
    chat_id: int
    lang: str
    label: str
    work: WorkKind
    request: GenerationRequest
    reply_to: int | None = None
    update_id: int | None = None
    thread_id: int | None = None  # the forum topic the answer goes to
    transcriber: str | None = None  # a voice message: the transcription label

    def to_wire(self) -> dict[str, Any]:
        r = self.request
        return {
            "transcriber": self.transcriber,
            "request_id": self.request_id, "user_id": self.user_id, "chat_id": self.chat_id, "lang": self.lang,
            "label": self.label, "work": self.work, "reply_to": self.reply_to, "update_id": self.update_id,
            "thread_id": self.thread_id,
            "request": {
                "category": str(r.category), "prompt": r.prompt, "messages": [_message(m) for m in r.messages],
                "system": r.system, "max_tokens": r.max_tokens, "image": _b64(r.image), "image_mime": r.image_mime,
                "mask": _b64(r.mask), "edit_op": str(r.edit_op) if r.edit_op else None,
                "search_prompt": r.search_prompt, "options": dict(r.options),
                "audio": _b64(r.audio), "audio_mime": r.audio_mime, "audio_seconds": r.audio_seconds,
            },
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Job:
        r = data["request"]
        request = GenerationRequest(
            Category(r["category"]), prompt=r["prompt"],
            messages=tuple(_chat_message(m) for m in r["messages"]),
            system=r["system"], max_tokens=r["max_tokens"], image=_unb64(r["image"]), image_mime=r["image_mime"],
            mask=_unb64(r["mask"]), edit_op=EditOp(r["edit_op"]) if r["edit_op"] else None,
            search_prompt=r["search_prompt"], options=r["options"], audio=_unb64(r.get("audio")),
            audio_mime=r.get("audio_mime", "audio/ogg"), audio_seconds=float(r.get("audio_seconds", 0.0)))
        work = data["work"]
        if work not in ("text", "media", "voice"):
            raise ValueError(f"unknown work {work!r}")
        return cls(int(data["request_id"]), int(data["user_id"]), int(data["chat_id"]), str(data["lang"]),
                   str(data["label"]), work, request, data.get("reply_to"), data.get("update_id"),
                   data.get("thread_id"), data.get("transcriber"))


def _message(m: ChatMessage) -> list[Any]:
    """[role, content] or, with images, [role, content, [[mime, b64 data or None, ref], ...]]."""
    if not m.images:
        return [m.role, m.content]
    return [m.role, m.content, [[i.mime, _b64(i.data) if i.data else None, i.ref] for i in m.images]]


def _chat_message(raw: list[Any]) -> ChatMessage:
    images = tuple(ImagePart(mime, _unb64(data) or b"", ref) for mime, data, ref in (raw[2] if len(raw) > 2 else ()))
    return ChatMessage(raw[0], raw[1], images)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def queue_name(prefix: str) -> str:
    return f"{prefix}generation"
