"""A loopback OpenAI-compatible API (providers-wire.md 1-2), one error dialect per preset.

    fake = FakeOpenAI(dialect="openrouter")
    fake.reply_text = "Hello there"         # what chat answers, streamed word by word
    fake.stream_keepalive = True            # interleave ": OPENROUTER PROCESSING" comments
    fake.stream_error_after = 2             # a mid-stream `data: {"error": ...}` after 2 deltas
    fake.stream_cut_after = 2               # drop the connection after 2 deltas
    fake.stream_usage = False               # ignore include_usage (no final usage chunk)
    fake.garbage = True                     # HTTP 200 with an HTML page
    fake.fail_next(429, openai_error("rate limit", "requests", "rate_limit_exceeded"))
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, Literal

from aiohttp import web

from tests.fakes.base import Call, FakeServer, respond

Dialect = Literal["openai", "openrouter", "xai", "aimlapi", "poe", "groq", "deepseek"]

# A real 1x1 PNG, so "is this an image" checks downstream see one.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
MP3_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(200)


# --- real error bodies, per dialect --------------------------------------------------------------

def openai_error(message: str, type: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI, Poe, Groq and DeepSeek."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openrouter_error(code: int, message: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


def xai_error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "error": message}


def aimlapi_error(status: int, message: str, path: str = "/v1/chat/completions") -> dict[str, Any]:
    return {"message": message, "path": path, "requestId": "6b1f0c9e-5b1a-4d4e-9d62-2f5a1b7c3e10",
            "statusCode": status, "timestamp": "2026-11-02T10:00:00.000Z"}


def auth_failure(dialect: Dialect) -> tuple[int, dict[str, Any]]:
    """What each service answers to a wrong key."""
    if dialect == "xai":
        return 400, xai_error("Client specified an invalid argument",
                              "Incorrect API key provided: xa***ey. You can obtain an API key from "
                              "https://console.x.ai.")
    if dialect == "openrouter":
        return 401, openrouter_error(401, "No auth credentials found")
    if dialect == "aimlapi":
        return 401, aimlapi_error(401, "Unauthorized")
    return 401, openai_error("Incorrect API key provided: sk-wr***ey. You can find your API key at "
                             "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                             "invalid_api_key")


def bad_request(dialect: Dialect, message: str) -> tuple[int, dict[str, Any]]:
    if dialect == "xai":
        return 400, xai_error("Client specified an invalid argument", message)
    if dialect == "openrouter":
        return 400, openrouter_error(400, message)
    if dialect == "aimlapi":
        return 400, aimlapi_error(400, message)
    return 400, openai_error(message, "invalid_request_error", None, "messages")


def stream_error(dialect: Dialect) -> dict[str, Any]:
    """The error event a stream carries once generation has started (status already 200)."""
    if dialect == "openrouter":
        return {"id": "gen-1", "object": "chat.completion.chunk", "created": 1762000000, "model": "m",
                "provider": "Upstream", "error": {"code": 502, "message": "Provider disconnected"},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
    return openai_error("The server had an error while processing your request. Sorry about that!",
                        "server_error")


class FakeOpenAI(FakeServer):
    def __init__(self, dialect: Dialect = "openai", api_key: str = "test-key") -> None:
        super().__init__()
        self.dialect = dialect
        self.api_key = api_key
        self.reply_text = "Hello from the fake model"
        self.finish_reason = "stop"
        self.refusal: str | None = None
        self.cost_usd: float | None = 0.000123 if dialect == "openrouter" else None
        self.stream_keepalive = False
        self.stream_error_after: int | None = None
        self.stream_error_body: dict[str, Any] | None = None  # default: stream_error(dialect)
        self.stream_cut_after: int | None = None
        self.stream_line_end = "\n"  # "\r\n" to speak CRLF
        self.stream_usage = True  # False: a service that ignores stream_options.include_usage
        self.stream_pace_s = 0.0  # a pause before each streamed piece: an answer that takes its time
        self.garbage = False
        self.image_format: Literal["url", "b64_json"] = "url"  # for models without response_format
        self.image_b64: str = base64.b64encode(PNG_1X1).decode()
        self.file_redirect: str | None = None  # /files/... answers 302 to this URL (outbound policy tests)
        self.speech_bytes = MP3_BYTES
        self.speech_content_type = "audio/mpeg"
        self.transcript = "hello from the audio"
        self.edit_models = ("gpt-image-1", "dall-e-2")  # what images/edits accepts

    async def __aenter__(self) -> FakeOpenAI:  # the concrete type, for the tests' type checker
        await self.start()
        return self

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/images/generations", self._images)
        app.router.add_post("/images/edits", self._edits)
        app.router.add_post("/audio/speech", self._speech)
        app.router.add_post("/audio/transcriptions", self._transcriptions)
        app.router.add_get("/files/{name}", self._file)

    async def _begin(self, request: web.Request) -> tuple[Call, web.StreamResponse | None]:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return call, scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return call, respond(*auth_failure(self.dialect))
        if self.garbage:
            return call, web.Response(status=200, text="<html><body>Bad gateway</body></html>",
                                      content_type="text/html")
        return call, None

    # --- chat ------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        call, early = await self._begin(request)
        if early is not None:
            return early
        body = call.json
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list) \
                or not body["messages"]:
            return respond(*bad_request(self.dialect, "'messages' is a required property"))
        if problem := _content_problem(body["messages"]):
            return respond(*bad_request(self.dialect, problem))
        pieces = self._pieces()
        usage = self._usage(body["messages"], len(pieces))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and self.stream_usage
            return await self._stream(request, body["model"], pieces, usage if include_usage else None)
        message: dict[str, Any] = {"role": "assistant", "content": self.reply_text if self.refusal is None else None,
                                   "refusal": self.refusal}
        return web.json_response({
            "id": "chatcmpl-fake1", "object": "chat.completion", "created": 1762000000, "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "usage": usage,
        })

    def _pieces(self) -> list[str]:
        words = self.reply_text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.reply_text else []

    def _usage(self, messages: list[Any], completion_tokens: int) -> dict[str, Any]:
        prompt = sum(len(_text_of(m.get("content", "")).split()) for m in messages if isinstance(m, dict)) + 3
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                                 "total_tokens": prompt + completion_tokens}
        if self.cost_usd is not None:
            usage["cost"] = self.cost_usd
        return usage

    async def _stream(self, request: web.Request, model: str, pieces: list[str],
                      usage: dict[str, Any] | None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        end = self.stream_line_end

        async def send(payload: Any) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            await response.write(f"data: {data}{end}{end}".encode())
            if self.stream_keepalive:
                await response.write(f": OPENROUTER PROCESSING{end}{end}".encode())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1762000000,
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    "usage": None}

        if self.stream_keepalive:
            await response.write(f": OPENROUTER PROCESSING{end}{end}".encode())
        await send(chunk({"role": "assistant", "content": ""}))
        if self.refusal is not None:
            await send(chunk({"refusal": self.refusal}))
        for n, piece in enumerate(pieces):
            if self.stream_error_after is not None and n == self.stream_error_after:
                await send(self.stream_error_body or stream_error(self.dialect))
                await response.write_eof()
                return response
            if self.stream_cut_after is not None and n == self.stream_cut_after:
                assert request.transport is not None
                request.transport.close()  # mid-body: the client sees an incomplete chunked message
                return response
            if self.stream_pace_s:
                await asyncio.sleep(self.stream_pace_s)
            await send(chunk({"content": piece}))
        await send(chunk({}, self.finish_reason))
        if usage is not None:
            await send({"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1762000000,
                        "model": model, "choices": [], "usage": usage})
        await send("[DONE]")
        await response.write_eof()
        return response

    # --- images --------------------------------------------------------------------------------

    def _image_items(self, model: str, response_format: str | None) -> list[dict[str, Any]]:
        fmt = response_format or ("b64_json" if model.startswith("gpt-image") else self.image_format)
        if fmt == "b64_json":
            return [{"b64_json": self.image_b64}]
        return [{"url": f"{self.url}/files/img-{len(self.calls)}.png", "revised_prompt": None}]

    async def _images(self, request: web.Request) -> web.StreamResponse:
        call, early = await self._begin(request)
        if early is not None:
            return early
        body = call.json if isinstance(call.json, dict) else {}
        if not body.get("prompt") or not body.get("model"):
            return respond(*bad_request(self.dialect, "'prompt' is a required property"))
        if body.get("response_format") and not str(body["model"]).startswith("dall-e"):
            return respond(*bad_request(self.dialect, "Unknown parameter: 'response_format'."))
        items = self._image_items(str(body["model"]), body.get("response_format"))
        return web.json_response({"created": 1762000000, "data": items})

    async def _edits(self, request: web.Request) -> web.StreamResponse:
        call, early = await self._begin(request)
        if early is not None:
            return early
        form = call.form
        if not isinstance(form.get("image"), bytes) or not form.get("prompt"):
            return respond(*bad_request(self.dialect, "'image' and 'prompt' are required"))
        if form.get("model") and form["model"] not in self.edit_models:
            return respond(*bad_request(self.dialect, f"Invalid value: '{form['model']}'. Value must be one of "
                                                      f"{', '.join(self.edit_models)}."))
        if form.get("background") and form.get("background") not in ("transparent", "opaque", "auto"):
            return respond(*bad_request(self.dialect, "Invalid value for 'background'."))
        items = self._image_items(str(form.get("model") or "dall-e-2"), None)
        return web.json_response({"created": 1762000000, "data": items})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        if self.file_redirect is not None:
            raise web.HTTPFound(self.file_redirect)
        return web.Response(body=PNG_1X1, content_type="image/png")

    # --- audio ---------------------------------------------------------------------------------

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        call, early = await self._begin(request)
        if early is not None:
            return early
        body = call.json if isinstance(call.json, dict) else {}
        if not body.get("input") or not body.get("voice") or not body.get("model"):
            return respond(*bad_request(self.dialect, "'input', 'model' and 'voice' are required"))
        return web.Response(body=self.speech_bytes, headers={"Content-Type": self.speech_content_type})

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        call, early = await self._begin(request)
        if early is not None:
            return early
        if not isinstance(call.form.get("file"), bytes) or not call.form.get("model"):
            return respond(*bad_request(self.dialect, "'file' and 'model' are required"))
        extension = call.filenames.get("file", "").rpartition(".")[2].lower()
        if extension not in TRANSCRIBABLE_EXTENSIONS:  # the real API goes by the file name's extension
            return respond(*bad_request(self.dialect, "Invalid file format. Supported formats: "
                                                      f"{sorted(TRANSCRIBABLE_EXTENSIONS)}"))
        return web.json_response({"text": self.transcript})


TRANSCRIBABLE_EXTENSIONS = frozenset({"flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"})


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _content_problem(messages: list[Any]) -> str | None:
    """What the real API says of content parts it cannot take: only user turns show images, each an
    `image_url` whose `url` is an https URL or a base64 data URI of an image."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            if kind != "image_url" or message.get("role") != "user":
                return f"Invalid content part at messages[{i}].content[{j}]"
            url = (part.get("image_url") or {}).get("url", "")
            head, _, data = str(url).partition(",")
            if not (url.startswith("https://") or (head.startswith("data:image/") and head.endswith(";base64")
                                                   and _is_base64(data))):
                return f"Invalid image URL at messages[{i}].content[{j}].image_url.url"
    return None


def _is_base64(data: str) -> bool:
    try:
        return bool(base64.b64decode(data, validate=True))
    except ValueError:
        return False
