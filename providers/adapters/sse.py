"""Server-sent events as OpenAI-style and Anthropic streams send them, and opening such a stream safely.

Lines are split on CR, LF or CRLF only, on bytes: httpx's `aiter_lines` uses `str.splitlines`, which
also breaks on U+2028, U+0085 and friends, and JSON may carry those raw inside a string.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from providers.errors import ErrorKind

if TYPE_CHECKING:
    from providers.base import Adapter, CallContext


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None  # the `event:` field; None when the server sent only `data:` (OpenAI style)
    data: str  # every `data:` line of the event, joined with "\n"
    id: str | None = None


async def iter_lines(chunks: AsyncIterable[bytes]) -> AsyncIterator[str]:
    """Lines without their terminator; CR, LF and CRLF all end a line, even split across chunks."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while True:
            cr, lf = buffer.find(b"\r", start), buffer.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            end = lf if cr == -1 or (lf != -1 and lf < cr) else cr
            if end == cr and end + 1 == len(buffer):
                break  # a CR at the end of a chunk may be the first half of a CRLF: wait for more
            yield buffer[start:end].decode("utf-8", "replace")
            start = end + (2 if buffer[end:end + 2] == b"\r\n" else 1)
        buffer = buffer[start:]
    if buffer:
        # A trailing CR is a finished line; anything else is an unterminated last line.
        yield buffer.rstrip(b"\r").decode("utf-8", "replace")


async def iter_sse_lines(lines: AsyncIterable[str]) -> AsyncIterator[SseEvent]:
    """Events per the WHATWG rules: a blank line dispatches, `:` lines are comments (keep-alives)."""
    event: str | None = None
    event_id: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data), event_id)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue  # e.g. ": OPENROUTER PROCESSING"
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value or None
        elif name == "id":
            event_id = value
    # An event not closed by a blank line is dropped (the spec's rule): a cut stream must not
    # hand out half a JSON document.


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseEvent]:
    async for event in iter_sse_lines(iter_lines(response.aiter_bytes())):
        yield event


def is_event_stream(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "").lower()


@asynccontextmanager
async def open_stream(adapter: Adapter, url: str, ctx: CallContext, **kw: Any) -> AsyncIterator[httpx.Response]:
    """POST and hold the streamed response open; closed on every path.

    An HTTP error status becomes `adapter.error()` (body read first). Transport failures, before or
    during the body (timeouts, a dropped connection), become `unavailable`.
    """
    try:
        async with adapter.client.stream("POST", url, timeout=ctx.timeout_s, **kw) as response:
            if response.status_code >= 400:
                await response.aread()
                raise adapter.error(response)
            yield response
    except httpx.TimeoutException as exc:
        raise adapter.fail(ErrorKind.UNAVAILABLE, f"stream timed out after {ctx.timeout_s:g}s") from exc
    except httpx.HTTPError as exc:
        raise adapter.fail(ErrorKind.UNAVAILABLE, f"stream broken: {type(exc).__name__}") from exc
