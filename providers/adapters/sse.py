"""Server-sent events as OpenAI-style and Anthropic streams send them, and opening such a stream safely.

Lines are split on CR, LF or CRLF only, on bytes: httpx's `aiter_lines` uses `str.splitlines`, which
also breaks on U+2028, U+0085 and friends, and JSON may carry those raw inside a string.

Everything a provider streams is bounded: a line (and an event) at MAX_LINE_BYTES, the stream at
MAX_STREAM_BYTES; past either the stream ends as `invalid_response`. Time is bounded by the manager
(first-token and total deadlines, providers.streaming). The line splitter looks at each arriving byte once:
it searches only the new chunk for line ends and keeps the unfinished line as a list of pieces, so a long
line costs linear time, not a re-scan of a growing buffer per chunk.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from providers.bodies import BodyTooLarge, capped_chunks, read_error
from providers.errors import ErrorKind

if TYPE_CHECKING:
    from providers.base import Adapter, CallContext

MAX_LINE_BYTES = 1 << 20  # a chat delta is a few hundred bytes; a megabyte without a line end is no SSE
MAX_STREAM_BYTES = 64 << 20  # ~250 bytes an event, one per token: far past the longest answer a model gives
_EOL = re.compile(rb"\r\n|\r|\n")  # one pass over a chunk finds every line end (a scanner, not a loop of finds)


class SseTooLong(ValueError):
    """A line or an event longer than the cap: the stream is not SSE, or the provider misbehaves."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None  # the `event:` field; None when the server sent only `data:` (OpenAI style)
    data: str  # every `data:` line of the event, joined with "\n"
    id: str | None = None


async def iter_lines(chunks: AsyncIterable[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> AsyncIterator[str]:
    """Lines without their terminator; CR, LF and CRLF all end a line, even split across chunks.

    SseTooLong for a line longer than `max_line_bytes`, as soon as the bytes seen say so."""
    pending: list[bytes] = []  # the unfinished line, piece by piece: joined once, when it ends
    pending_len = 0
    skip_lf = False  # the last chunk ended in CR: an LF opening this one is the second half of a CRLF
    async for chunk in chunks:
        if not chunk:
            continue
        start = 1 if skip_lf and chunk[:1] == b"\n" else 0
        skip_lf = False
        for end in _EOL.finditer(chunk, start):
            piece = chunk[start:end.start()]
            if pending_len + len(piece) > max_line_bytes:
                raise SseTooLong(f"a stream line longer than {max_line_bytes} bytes")
            pending.append(piece)
            yield b"".join(pending).decode("utf-8", "replace")
            pending, pending_len = [], 0
            start = end.end()
            skip_lf = end.group() == b"\r" and start == len(chunk)
        rest = chunk[start:]
        pending_len += len(rest)
        if pending_len > max_line_bytes:
            raise SseTooLong(f"a stream line longer than {max_line_bytes} bytes")
        if rest:
            pending.append(rest)
    if pending:  # an unterminated last line
        yield b"".join(pending).decode("utf-8", "replace")


async def iter_sse_lines(lines: AsyncIterable[str], max_event_chars: int = MAX_LINE_BYTES) -> AsyncIterator[SseEvent]:
    """Events per the WHATWG rules: a blank line dispatches, `:` lines are comments (keep-alives).

    SseTooLong for an event whose data passes `max_event_chars` (many short `data:` lines add up too)."""
    event: str | None = None
    event_id: str | None = None
    data: list[str] = []
    size = 0
    async for line in lines:
        if not line:
            if data:
                yield SseEvent(event, "\n".join(data), event_id)
            event, data, size = None, [], 0
            continue
        if line.startswith(":"):
            continue  # e.g. ": OPENROUTER PROCESSING"
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            size += len(value) + 1
            if size > max_event_chars:
                raise SseTooLong(f"a stream event longer than {max_event_chars} characters")
            data.append(value)
        elif name == "event":
            event = value or None
        elif name == "id":
            event_id = value
    # An event not closed by a blank line is dropped (the spec's rule): a cut stream must not
    # hand out half a JSON document.


async def iter_sse(response: httpx.Response, max_bytes: int = MAX_STREAM_BYTES) -> AsyncIterator[SseEvent]:
    """The events of a streamed response; BodyTooLarge past `max_bytes`, SseTooLong past the line cap."""
    async for event in iter_sse_lines(iter_lines(capped_chunks(response, max_bytes))):
        yield event


def is_event_stream(response: httpx.Response) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "").lower()


@asynccontextmanager
async def open_stream(adapter: Adapter, url: str, ctx: CallContext, **kw: Any) -> AsyncIterator[httpx.Response]:
    """POST and hold the streamed response open; closed on every path.

    An HTTP error status becomes `adapter.error()` (with at most MAX_ERROR_BYTES of its body). Transport
    failures, before or during the body (timeouts, a dropped connection), become `unavailable`; a body, a
    line or an event over its cap, `invalid_response`.
    """
    try:
        async with adapter.client.stream("POST", url, timeout=ctx.timeout_s, **kw) as response:
            if response.status_code >= 400:
                raise adapter.error(await read_error(response))
            yield response
    except httpx.TimeoutException as exc:
        raise adapter.fail(ErrorKind.UNAVAILABLE, f"stream timed out after {ctx.timeout_s:g}s") from exc
    except httpx.HTTPError as exc:
        raise adapter.fail(ErrorKind.UNAVAILABLE, f"stream broken: {type(exc).__name__}") from exc
    except (BodyTooLarge, SseTooLong) as exc:
        raise adapter.fail(ErrorKind.INVALID_RESPONSE, str(exc), status=200) from exc
