"""Shared plumbing of submit-then-poll APIs (Replicate, fal, Stability creative upscale, ...).

    poll_until(fetch, ctx, what)   call `fetch` every ctx.poll_interval_s until it returns a value;
                                   past ctx.max_poll_s it raises ProviderError(unavailable)
    same_origin(url, base)         whether a URL the provider handed back may receive our key
    media_from_url(url, default)   a `Media` for an output URL (mime from the extension; data: URIs decoded)
    data_uri(data, mime)           a file inlined where these APIs expect a URL (inputs such as images)
    tagged_with_job(job_id)        stamps the job id on errors raised after submission (for resume/cancel)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

from loguru import logger

from providers.base import CallContext
from providers.errors import ErrorKind, ProviderError
from providers.types import Media

T = TypeVar("T")

_MIME_BY_EXT = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
    "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    "mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4",
}


async def poll_until(
    fetch: Callable[[], Awaitable[T | None]],
    ctx: CallContext,
    what: str,
    *,
    provider: str | None = None,
    wait_first: bool = False,
) -> T:
    """Poll until `fetch` returns something other than None.

    `fetch` raises ProviderError itself for a failed job; None means "still running". The deadline
    counts from the first call; one last fetch happens at the deadline so a job finishing right then
    is not thrown away. `wait_first` skips the immediate fetch (a job just submitted is never done).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.max_poll_s
    interval = max(ctx.poll_interval_s, 0.0)
    polls = 0
    if wait_first:
        await asyncio.sleep(min(interval, ctx.max_poll_s))
    while True:
        result = await fetch()
        polls += 1
        if result is not None:
            return result
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.info("{} still running after {} polls ({:g}s)", what, polls, ctx.max_poll_s)
            raise ProviderError(ErrorKind.UNAVAILABLE, f"{what} still running after {ctx.max_poll_s:g}s",
                                provider=provider)
        await asyncio.sleep(min(interval, remaining))


def same_origin(url: str, base: str) -> bool:
    """True when `url` has the scheme, host and port of `base`.

    Providers hand back status and result URLs; following one to another host would send it our key
    and would bypass a proxy or fake configured as the base URL.
    """
    a, b = urlsplit(url), urlsplit(base)
    return bool(a.scheme and a.netloc) and (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def mime_from_url(url: str, default: str) -> str:
    path = urlsplit(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return _MIME_BY_EXT.get(ext, default)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def media_from_url(url: str, default_mime: str, mime: str | None = None) -> Media | None:
    """Media for one output; a `data:` URI (some sync answers inline the file) is decoded to bytes.

    Returns None for something that is neither an http(s) URL nor a decodable data URI.
    """
    if url.startswith("data:"):
        header, _, payload = url[5:].partition(",")
        if not header.endswith(";base64"):
            return None
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
        return Media(mime=mime or header[: -len(";base64")] or default_mime, data=data)
    if not url.startswith(("https://", "http://")):
        return None
    return Media(mime=mime or mime_from_url(url, default_mime), url=url)


@contextmanager
def tagged_with_job(job_id: str) -> Iterator[None]:
    """Stamp the job id on any ProviderError raised inside, so the caller can resume or cancel it."""
    try:
        yield
    except ProviderError as exc:
        if exc.job_id is None:
            exc.job_id = job_id
        raise
