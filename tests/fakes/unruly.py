"""An OpenAI-style provider that misbehaves on purpose, to prove every response is bounded in bytes and time.

The base URL picks the behaviour: an adapter configured with `f"{fake.url}/flood"` calls
`/flood/chat/completions` (or `/flood/audio/speech`). `fake.sent[mode]` counts the body bytes the fake
managed to hand to the socket, so a test can see where the client stopped reading.

    flood           200 JSON, chunked, 64 KiB chunks up to 300 MB (a JSON answer that never ends)
    flood-declared  the same with `Content-Length: 300 MB` announced
    flood-error     500 text/html, chunked, up to 300 MB
    flood-audio     200 audio/mpeg, chunked, up to 300 MB
    trickle         200 JSON: one space every `gap_s` (`steps` of them), then a valid chat answer
    keepalive       200 SSE: an SSE comment every `gap_s` (`steps` of them), then one token and [DONE]
    slow-tokens     200 SSE: one token every `gap_s` (`steps` of them), then [DONE]
    long-line       200 SSE: one `data:` line whose JSON carries a 2 MB token, sent in 64 KiB pieces
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Iterator

from aiohttp import web

from tests.fakes.base import FakeServer

FLOOD_BYTES = 300 << 20
LONG_LINE_BYTES = 2 << 20
_PIECE = 64 << 10


def chat_answer(text: str) -> bytes:
    return json.dumps({"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()


def token_event(text: str) -> bytes:
    payload = {"model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class UnrulyProvider(FakeServer):
    def __init__(self, gap_s: float = 0.05, steps: int = 40) -> None:
        super().__init__()
        self.gap_s, self.steps = gap_s, steps
        self.sent: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()  # answers written to their end (the client read them all)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{mode}/chat/completions", self.handle)
        app.router.add_post("/{mode}/audio/speech", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        mode = request.match_info["mode"]
        status = 500 if mode == "flood-error" else 200
        ctype = {"flood-error": "text/html", "flood-audio": "audio/mpeg", "keepalive": "text/event-stream",
                 "slow-tokens": "text/event-stream", "long-line": "text/event-stream"}.get(mode, "application/json")
        response = web.StreamResponse(status=status, headers={"Content-Type": ctype})
        if mode == "flood-declared":
            response.content_length = FLOOD_BYTES
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for piece in self._pieces(mode):
                if piece is None:
                    await asyncio.sleep(self.gap_s)
                    continue
                await response.write(piece)
                self.sent[mode] += len(piece)
            await response.write_eof()
            self.finished[mode] += 1
        except ConnectionError:
            pass  # the client stopped reading and closed the connection: what the tests want to see
        return response

    def _pieces(self, mode: str) -> Iterable[bytes | None]:
        """The body as pieces to write; None is a pause of `gap_s`."""
        if mode.startswith("flood"):
            return _flood(FLOOD_BYTES)
        if mode == "trickle":
            return [*([b" ", None] * self.steps), chat_answer("late but whole")]
        if mode == "keepalive":
            return [*([b": keep-alive\n\n", None] * self.steps), token_event("finally"), b"data: [DONE]\n\n"]
        if mode == "slow-tokens":
            return [*[p for i in range(self.steps) for p in (token_event(f"t{i} "), None)], b"data: [DONE]\n\n"]
        if mode == "long-line":
            line = token_event("x" * LONG_LINE_BYTES)
            return [line[i:i + _PIECE] for i in range(0, len(line), _PIECE)] + [b"data: [DONE]\n\n"]
        raise web.HTTPNotFound()


def _flood(total: int) -> Iterator[bytes]:
    """`total` bytes of spaces in 64 KiB pieces, made as they are written (never held at once)."""
    for start in range(0, total, _PIECE):
        yield b" " * min(_PIECE, total - start)
