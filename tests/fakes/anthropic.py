"""A loopback Anthropic Messages API (providers-wire.md 3), validating what the real one validates.

    fake = FakeAnthropic()
    fake.reply_text = "Hi"               # streamed word by word, with ping events in between
    fake.stop_reason = "refusal"
    fake.stream_error_after = 1          # `event: error` (overloaded_error) after 1 delta
    fake.stream_cut_after = 1            # drop the connection after 1 delta
    fake.fail_next(529, anthropic_error("overloaded_error", "Overloaded"))
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from tests.fakes.base import Call, FakeServer, respond

API_VERSION = "2023-06-01"


def anthropic_error(type: str, message: str, request_id: str = "req_011CSHoEeqs5C35K2UUqR7Fy") -> dict[str, Any]:
    return {"type": "error", "error": {"type": type, "message": message}, "request_id": request_id}


class FakeAnthropic(FakeServer):
    def __init__(self, api_key: str = "test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.reply_text = "Hello from the fake Claude"
        self.stop_reason = "end_turn"
        self.cache_read_tokens = 0
        self.cache_creation_tokens = 0
        self.stream_error_after: int | None = None
        self.stream_error_type = "overloaded_error"
        self.stream_cut_after: int | None = None
        self.garbage = False

    async def __aenter__(self) -> FakeAnthropic:  # the concrete type, for the tests' type checker
        await self.start()
        return self

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        if request.headers.get("x-api-key") != self.api_key:
            return respond(401, anthropic_error("authentication_error", "invalid x-api-key"))
        if request.headers.get("anthropic-version") != API_VERSION:
            return respond(400, anthropic_error("invalid_request_error",
                                                "anthropic-version: header is required and must be supported"))
        if self.garbage:
            return web.Response(status=200, text="<html>Bad gateway</html>", content_type="text/html")
        problem = _validate(call)
        if problem:
            return respond(400, anthropic_error("invalid_request_error", problem))
        body = call.json
        usage = self._usage(body)
        if body.get("stream"):
            return await self._stream(request, body["model"], usage)
        return web.json_response({
            "id": "msg_01fake", "type": "message", "role": "assistant", "model": body["model"],
            "content": [{"type": "text", "text": self.reply_text}] if self.reply_text else [],
            "stop_reason": self.stop_reason, "stop_sequence": None, "usage": usage,
        })

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        words = sum(len(_text_of(m["content"]).split()) for m in body["messages"])
        words += len(str(body.get("system", "")).split())
        return {"input_tokens": words + 5, "cache_creation_input_tokens": self.cache_creation_tokens,
                "cache_read_input_tokens": self.cache_read_tokens, "output_tokens": len(self._pieces())}

    def _pieces(self) -> list[str]:
        words = self.reply_text.split(" ") if self.reply_text else []
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    async def _stream(self, request: web.Request, model: str, usage: dict[str, int]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)

        async def send(name: str, payload: dict[str, Any]) -> None:
            await response.write(f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n".encode())

        start_usage = {**usage, "output_tokens": 1}
        await send("message_start", {"message": {
            "id": "msg_01fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        await send("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        await send("ping", {})
        for n, piece in enumerate(self._pieces()):
            if self.stream_error_after is not None and n == self.stream_error_after:
                await send("error", anthropic_error(self.stream_error_type, "Overloaded"))
                await response.write_eof()
                return response
            if self.stream_cut_after is not None and n == self.stream_cut_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await send("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
            await send("ping", {})
        await send("content_block_stop", {"index": 0})
        await send("future_event_nobody_knows", {"x": 1})  # clients must ignore unknown events
        await send("message_delta", {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                                     "usage": {"output_tokens": usage["output_tokens"]}})
        await send("message_stop", {})
        await response.write_eof()
        return response


def _validate(call: Call) -> str | None:
    """The checks the real API makes that an adapter can get wrong."""
    body = call.json
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not body.get("model"):
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if "system" in body and not isinstance(body["system"], (str, list)):
        return "system: Input should be a valid string"
    for i, message in enumerate(messages):
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        if i == 0 and message["role"] != "user":
            return "messages: first message must use the \"user\" role"
        if i > 0 and message["role"] == messages[i - 1]["role"]:
            return "messages: roles must alternate between \"user\" and \"assistant\", but found multiple " \
                   f"\"{message['role']}\" roles in a row"
        if not message.get("content"):
            return f"messages.{i}: all messages must have non-empty content"
        if isinstance(message["content"], list):
            for j, block in enumerate(message["content"]):
                if problem := _block_problem(block, message["role"]):
                    return f"messages.{i}.content.{j}: {problem}"
    return None


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _block_problem(block: Any, role: str) -> str | None:
    """What the real API refuses in a content block: an unknown type, an image outside a user turn, an
    image source that is not base64 of an accepted media type."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return None if isinstance(block.get("text"), str) and block["text"] else "text: Field required"
    if kind != "image":
        return f"Input tag {kind!r} found using 'type' does not match any of the expected tags"
    if role != "user":
        return "image blocks are only allowed in user messages"
    source = block.get("source") or {}
    if source.get("type") != "base64" or source.get("media_type") not in IMAGE_TYPES:
        return f"image.source.media_type: Input should be {', '.join(IMAGE_TYPES)}"
    try:
        base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        return "image.source.base64.data: invalid base64 data"
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)
