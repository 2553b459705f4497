"""The adapter contract: one class per API family, one file each, over a shared httpx client.

An adapter builds requests and parses responses in its API's real wire format, and turns every failure
into a `ProviderError` of the right kind. It never retries or falls back: that is the manager's job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from providers.config import ProviderConfig
from providers.errors import ErrorKind, ProviderError
from providers.types import AdapterResult, Category, GenerationRequest, StreamChunk

JobIdCallback = Callable[[str], None]


@dataclass(slots=True)
class CallContext:
    """Per-call knobs the manager hands to an adapter."""

    timeout_s: float
    on_job_id: JobIdCallback | None = None  # called as soon as an async job id is known
    poll_interval_s: float = 1.0
    max_poll_s: float = 600.0  # an async job still running after this is `unavailable`

    def report_job(self, job_id: str) -> None:
        if self.on_job_id is not None:
            self.on_job_id(job_id)


class Adapter:
    """Base of every adapter. Subclasses set `categories` and implement what they support."""

    kind: ClassVar[str] = ""
    categories: ClassVar[frozenset[Category]] = frozenset()
    streams_text: ClassVar[bool] = False

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.name = config.name
        self.client = client

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        raise NotImplementedError

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
        """One HTTP exchange; transport failures become `unavailable`, HTTP errors go to `error()`."""
        try:
            response = await self.client.request(method, url, timeout=ctx.timeout_s, **kw)
        except httpx.TimeoutException as exc:
            raise self.fail(ErrorKind.UNAVAILABLE, f"timed out after {ctx.timeout_s:g}s") from exc
        except httpx.HTTPError as exc:
            raise self.fail(ErrorKind.UNAVAILABLE, f"connection failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise self.error(response)
        return response

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
