"""Reading a response body within a byte cap: the one piece of code every provider body goes through.

httpx's `response.content` / `aread()` hold whatever the server sends, so a provider (or a URL it names)
sending 300 MB where JSON was promised would take 300 MB of memory before any check could run. Here the
bytes are counted as httpx hands them over (decoded, so a gzip bomb counts at its real size) and reading
stops as soon as the count passes the cap:

    read_capped(response, max_bytes)     the whole body, or BodyTooLarge
    read_prefix(response, max_bytes)     at most the first max_bytes (an error body: enough for a message)
    read_error(response)                 a finished copy of a failed response, MAX_ERROR_BYTES of its body
    with_body(response, body)            a finished copy of a streamed response carrying `body`

Used by `Adapter.send` (JSON, media and error bodies; `CallContext.body_cap` picks the cap),
`providers.adapters.sse` (streams) and `providers.outbound` (media downloads), which each turn
BodyTooLarge into their own error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

MAX_JSON_BYTES = 8 << 20  # a chat answer is kilobytes; 8 MiB is far past any honest one
MAX_ERROR_BYTES = 64 << 10  # an error body is read only for its message and code
DEFAULT_MAX_MEDIA_BYTES = 50 << 20  # the bot's MAX_MEDIA_BYTES default; the manager is given the real one

# Headers that describe the bytes on the wire, not the decoded body a finished copy carries.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class BodyTooLarge(Exception):
    """The body passed its cap (or announced that it would); nothing past the cap was kept."""

    def __init__(self, max_bytes: int, declared: int | None = None) -> None:
        self.max_bytes, self.declared = max_bytes, declared
        said = f"announced {declared} bytes" if declared is not None else f"sent more than {max_bytes} bytes"
        super().__init__(f"the body {said}, over the {max_bytes} byte cap")


async def capped_chunks(response: httpx.Response, max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; BodyTooLarge as soon as they add up to more than `max_bytes`."""
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(max_bytes, int(declared))
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise BodyTooLarge(max_bytes)
        yield chunk


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    return b"".join([chunk async for chunk in capped_chunks(response, max_bytes)])


async def read_prefix(response: httpx.Response, max_bytes: int) -> bytes:
    """The first `max_bytes` of the body; the rest is never read (closing the response drops it)."""
    parts: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk[: max_bytes - total])
        total += len(parts[-1])
        if total >= max_bytes:
            break
    return b"".join(parts)


async def read_error(response: httpx.Response) -> httpx.Response:
    """A finished copy of a failed response carrying at most MAX_ERROR_BYTES of its body."""
    return with_body(response, await read_prefix(response, MAX_ERROR_BYTES))


def with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A finished response with the status, headers, request and extensions of `response` and `body`
    (already decoded), for code that reads `.content`, `.text` or `.json()`."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request,
                          extensions=response.extensions)
