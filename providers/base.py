"""The adapter contract: one class per API family, one file each, over a shared httpx client.

An adapter builds requests and parses responses in its API's real wire format, and turns every failure
into a `ProviderError` of the right kind. It never retries or falls back: that is the manager's job.

Capabilities: `supports(request, model)` says, before any call, whether this adapter (with this model) can
serve a request at all: see images in a chat, do an edit operation, read an audio format. The manager
skips a provider that cannot (logged, and named in `AllProvidersFailed.skipped`), so a capability never
turns into a `bad_request` that would stop the fallback. The providers file can narrow or widen what an
adapter assumes with `options.vision` (true/false) and `options.edit_ops` (a list of operation names).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from providers.bodies import (
    DEFAULT_MAX_MEDIA_BYTES,
    MAX_JSON_BYTES,
    BodyTooLarge,
    read_capped,
    read_error,
    with_body,
)
from providers.config import ProviderConfig, first_token_deadline, total_deadline
from providers.errors import ErrorKind, ProviderError
from providers.types import AdapterResult, Category, EditOp, GenerationRequest, StreamChunk

JobIdCallback = Callable[[str], None]
# Every operation but `instruct`: what an edit endpoint with a fixed operation per call can be asked to do.
FIXED_EDIT_OPS = frozenset(EditOp) - {EditOp.INSTRUCT}


@dataclass(frozen=True, slots=True)
class Support:
    """Whether an adapter can serve a request; falsy with the reason when it cannot."""

    reason: str = ""

    def __bool__(self) -> bool:
        return not self.reason


SUPPORTED = Support()


@dataclass(slots=True)
class CallContext:
    """Per-call knobs the manager hands to an adapter."""

    timeout_s: float  # per read
    on_job_id: JobIdCallback | None = None  # called as soon as an async job id is known
    poll_interval_s: float = 1.0
    max_poll_s: float = 600.0  # an async job still running after this is `unavailable`
    total_timeout_s: float | None = None  # one exchange (or stream) as a whole; None: TOTAL_TIMEOUT_FACTOR x timeout_s
    first_token_timeout_s: float | None = None  # a stream's first text; None: timeout_s
    media: bool = False  # a call for a media category (its answer may be a file): see body_cap
    max_json_bytes: int = MAX_JSON_BYTES
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES

    @property
    def total_s(self) -> float:
        return total_deadline(self.timeout_s, self.total_timeout_s)

    @property
    def first_token_s(self) -> float:
        return first_token_deadline(self.timeout_s, self.first_token_timeout_s, self.total_timeout_s)

    def body_cap(self, content_type: str) -> int:
        """The cap of one answer body. A text call's answer is JSON (or text): the JSON cap, whatever it is
        labelled. A media call's binary body gets the media cap; its JSON may inline the file as base64
        (4 bytes per 3), so it gets room for one such file on top of the JSON cap."""
        if not self.media:
            return self.max_json_bytes
        ctype = content_type.lower()
        if "json" in ctype or ctype.startswith("text/"):
            return self.max_json_bytes + -(-self.max_media_bytes // 3) * 4
        return self.max_media_bytes

    def report_job(self, job_id: str) -> None:
        if self.on_job_id is not None:
            self.on_job_id(job_id)


class Adapter:
    """Base of every adapter. Subclasses set `categories` and implement what they support."""

    kind: ClassVar[str] = ""
    categories: ClassVar[frozenset[Category]] = frozenset()
    streams_text: ClassVar[bool] = False
    vision: ClassVar[bool] = False  # its chat API carries images
    audio_formats: ClassVar[frozenset[str]] = frozenset()  # transcription: the audio types it reads

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.name = config.name
        self.client = client

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        raise NotImplementedError

    # --- capabilities ----------------------------------------------------------------------------

    def supports(self, request: GenerationRequest, model: str) -> Support:
        """Whether this adapter, with `model`, can serve `request` at all (see the module docstring)."""
        category = request.category
        if category not in self.categories:
            return Support(f"does not serve {category}")
        if category is Category.TEXT and request.chat_images() and not self.sees_images(model):
            return Support("cannot see images")
        if category is Category.IMAGE_EDIT and request.edit_op is not None \
                and request.edit_op not in self.edit_ops(model):
            return Support(f"cannot do the {request.edit_op} edit")
        if category is Category.TRANSCRIPTION:
            mime = request.audio_type()
            if mime not in self.audio_formats:
                return Support(f"cannot read {mime or 'audio of no type'}")
        return SUPPORTED

    def sees_images(self, model: str) -> bool:
        """Whether a chat with images can go to this API; `options.vision` overrides the family's default."""
        configured = self.config.options.get("vision")
        return configured if isinstance(configured, bool) else self.vision

    def edit_ops(self, model: str) -> frozenset[EditOp]:
        """The edit operations `model` does here: `options.edit_ops` when set, else the adapter's own
        `default_edit_ops`."""
        configured = self.config.options.get("edit_ops")
        if isinstance(configured, list):
            return frozenset(_edit_ops(configured))
        return self.default_edit_ops(model)

    def default_edit_ops(self, model: str) -> frozenset[EditOp]:
        return FIXED_EDIT_OPS

    def stream_text(self, request: GenerationRequest, model: str, ctx: CallContext) -> AsyncIterator[StreamChunk]:
        raise ProviderError(ErrorKind.BAD_REQUEST, "streaming is not supported", provider=self.name)

    async def resume(self, job_id: str, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        """Poll an existing async job to its end instead of creating (and paying for) a new one."""
        raise ProviderError(ErrorKind.BAD_REQUEST, "this provider has no resumable jobs", provider=self.name)

    async def cancel(self, job_id: str) -> bool:
        """Ask the provider to stop a job, best effort: never raises a ProviderError. True when the
        provider took the request (not that the job has stopped); False without a cancel endpoint."""
        return False

    # --- shared plumbing ---------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + "/" + path.lstrip("/")

    def fail(self, kind: ErrorKind, message: str, **kw: Any) -> ProviderError:
        return ProviderError(kind, message, provider=self.name, **kw)

    async def send(self, method: str, url: str, ctx: CallContext, **kw: Any) -> httpx.Response:
        """One HTTP exchange, its body read whole; transport failures become `unavailable`, HTTP errors go
        to `error()` (with at most MAX_ERROR_BYTES of their body).

        The body is read within `ctx.body_cap` (past it: `invalid_response`, nothing more is read), and the
        exchange as a whole within `ctx.total_s`: `timeout_s` is per read, which a trickle never trips."""
        status: int | None = None
        try:
            async with asyncio.timeout(ctx.total_s), \
                    self.client.stream(method, url, timeout=ctx.timeout_s, **kw) as response:
                status = response.status_code
                if status >= 400:
                    raise self.error(await read_error(response))
                answer = await whole(response, ctx)
        except TimeoutError as exc:
            raise self.fail(ErrorKind.UNAVAILABLE, f"no complete answer within {ctx.total_s:g}s") from exc
        except httpx.TimeoutException as exc:
            raise self.fail(ErrorKind.UNAVAILABLE, f"timed out after {ctx.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise self.fail(ErrorKind.UNAVAILABLE, f"connection failed: {type(exc).__name__}") from exc
        except BodyTooLarge as exc:
            raise self.fail(ErrorKind.INVALID_RESPONSE, str(exc), status=status) from exc
        return answer

    def error(self, response: httpx.Response) -> ProviderError:
        """Turn a failed HTTP response into a ProviderError; each adapter refines it from its body."""
        raise NotImplementedError

    def json_body(self, response: httpx.Response) -> Any:
        """The parsed JSON body; a body that is not JSON is `invalid_response`."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "response body is not JSON",
                            status=response.status_code) from exc


async def whole(response: httpx.Response, ctx: CallContext) -> httpx.Response:
    """`response` read whole within `ctx.body_cap` (BodyTooLarge past it), as a finished copy: an unstreamed
    answer, or a streamed one that turned out not to be a stream (a proxy that ignored stream=true, an
    error object on 200)."""
    return with_body(response, await read_capped(response, ctx.body_cap(response.headers.get("content-type", ""))))


def _edit_ops(names: Iterable[Any]) -> Iterable[EditOp]:
    for name in names:
        try:
            yield EditOp(str(name))
        except ValueError:
            continue  # the loader refuses unknown names; a hand-built config just loses them


def error_json(response: httpx.Response) -> Any:
    """The body parsed as JSON for classification, or None (error bodies are often HTML or empty)."""
    try:
        return response.json()
    except ValueError:  # not JSON, or not decodable
        return None


def error_text(response: httpx.Response, limit: int = 500) -> str:
    """The body as text for classification and messages, bounded (bodies can be huge HTML pages)."""
    try:
        return response.text[:limit]
    except Exception:  # undecodable body
        return ""
