"""fal.ai queue API (providers-wire.md section 6): submit, poll the status, fetch the result, cancel.

`config.base_url` is the queue host (https://queue.fal.run). A model is "owner/app[/sub...]".

Job id format: "<model>|<request_id>", e.g. "fal-ai/flux/schnell|764cabcf-b745-4b3e-ae38-1200304cf45b".
The status and result URLs drop the model's subpath ({base}/{owner}/{app}/requests/{id}[/status]),
so `resume` rebuilds them from the first two segments of the model; the whole model is kept so the
id stays readable in the request log.

Provider options: `input` (fixed inputs merged into every call), `image_field` (input name of the
source image for image_edit; default "image_url").

Edits: a FLUX Kontext model (`fal-ai/flux-pro/kontext`, ...) follows instructions: it gets the edit as one
instruction (providers.adapters.instructions) and the picture as `image_url`, and does the instruction
operations only; any other model gets the prompt as written and is assumed to do every fixed operation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from loguru import logger

from providers.adapters.instructions import INSTRUCTION_OPS, instruction, is_kontext
from providers.adapters.polling import data_uri, media_from_url, poll_until, same_origin, tagged_with_job
from providers.base import FIXED_EDIT_OPS, Adapter, CallContext, error_json, error_text
from providers.errors import (
    ErrorKind,
    ProviderError,
    kind_from_status,
    parse_retry_after,
    refine_kind,
    wait_from_words,
)
from providers.types import AdapterResult, Category, EditOp, GenerationRequest, Usage

_POLICY = re.compile(r"content[_ ]policy|nsfw|safety|moderation|flagged", re.I)
_RUNNING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
_DEFAULT_MIME = {Category.IMAGE: "image/png", Category.IMAGE_EDIT: "image/png", Category.VIDEO: "video/mp4"}
_RENAMED_OPTIONS = {"duration_s": "duration", "num_outputs": "num_images"}


@dataclass(frozen=True, slots=True)
class _JobUrls:
    status: str
    result: str
    cancel: str


class FalAdapter(Adapter):
    kind = "fal"
    categories = frozenset({Category.IMAGE, Category.IMAGE_EDIT, Category.VIDEO})

    def default_edit_ops(self, model: str) -> frozenset[EditOp]:
        return INSTRUCTION_OPS if is_kontext(model) else FIXED_EDIT_OPS

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        app = self._app_id(model)
        response = await self.send("POST", self.url(_quoted_path(model)), ctx, json=self._input(request, model),
                                   headers=self._headers())
        body = self.json_body(response)
        request_id = body.get("request_id") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not request_id or "|" in request_id:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "queue answer has no request_id", status=response.status_code)
        job_id = f"{model}|{request_id}"
        ctx.report_job(job_id)
        logger.debug("{}: queued {} (position {})", self.name, job_id, body.get("queue_position"))
        with tagged_with_job(job_id):
            urls = self._job_urls(app, request_id, body)
            return await self._finish(urls, request, model, job_id, ctx, wait_first=True)

    async def resume(self, job_id: str, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        job_model, request_id = self._split(job_id)
        with tagged_with_job(job_id):
            urls = self._job_urls(self._app_id(job_model), request_id, {})
            return await self._finish(urls, request, job_model, job_id, ctx)

    async def cancel(self, job_id: str) -> bool:
        ctx = CallContext(timeout_s=self.config.timeout_s)
        try:
            job_model, request_id = self._split(job_id)
            urls = self._job_urls(self._app_id(job_model), request_id, {})
            await self.send("PUT", urls.cancel, ctx, headers=self._headers())
        except ProviderError as exc:  # best effort: a finished job cannot be cancelled anyway
            logger.warning("{}: cancel of {} failed: {}", self.name, job_id, exc.kind)
            return False
        return True

    def error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = error_json(response)
        message, types = _describe(body)
        message = message or error_text(response, 200) or f"HTTP {status}"
        # 403 "User is locked. Reason: Exhausted balance" is quota; 422 with a policy type is moderation
        kind = refine_kind(kind_from_status(status), f"{message} {types}")
        retry_after = None
        if kind is ErrorKind.RATE_LIMITED:
            retry_after = parse_retry_after(response.headers)
            if retry_after is None:
                retry_after = wait_from_words(message)
        return self.fail(kind, message[:500], status=status, retry_after_s=retry_after)

    # --- requests ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if not self.config.api_key:
            raise self.fail(ErrorKind.AUTH, "no API key configured")
        return {**self.config.headers, "Authorization": f"Key {self.config.api_key}"}

    def _input(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        fixed = self.config.options.get("input")
        inputs: dict[str, Any] = dict(fixed) if isinstance(fixed, dict) else {}
        edit = request.category is Category.IMAGE_EDIT
        inputs["prompt"] = instruction(request) if edit and is_kontext(model) else request.prompt
        if request.category is Category.IMAGE_EDIT and request.image is not None:
            field = str(self.config.options.get("image_field", "image_url"))
            inputs[field] = data_uri(request.image, request.image_mime)  # fal accepts data URIs as URLs
            if request.mask is not None:
                inputs["mask_url"] = data_uri(request.mask, "image/png")
        for key, value in request.options.items():
            inputs[_RENAMED_OPTIONS.get(key, key)] = value
        return inputs

    def _app_id(self, model: str) -> str:
        parts = model.strip("/").split("/")
        if len(parts) < 2 or not all(parts):
            raise self.fail(ErrorKind.BAD_REQUEST, f"model {model!r} is not owner/app[/path]")
        return "/".join(parts[:2])

    def _split(self, job_id: str) -> tuple[str, str]:
        model, sep, request_id = job_id.rpartition("|")
        if not sep or not model or not request_id:
            raise self.fail(ErrorKind.BAD_REQUEST, f"job id {job_id!r} is not '<model>|<request_id>'")
        return model, request_id

    def _job_urls(self, app: str, request_id: str, answer: Any) -> _JobUrls:
        """The URLs the queue returned when they are on our base host, else the documented ones."""
        base = self.url(f"{_quoted_path(app)}/requests/{quote(request_id, safe='')}")
        given = answer if isinstance(answer, dict) else {}

        def pick(key: str, default: str) -> str:
            url = given.get(key)
            return url if isinstance(url, str) and same_origin(url, self.config.base_url) else default

        return _JobUrls(pick("status_url", base + "/status"), pick("response_url", base),
                        pick("cancel_url", base + "/cancel"))

    # --- responses -----------------------------------------------------------------------------

    async def _finish(self, urls: _JobUrls, request: GenerationRequest, model: str, job_id: str,
                      ctx: CallContext, *, wait_first: bool = False) -> AdapterResult:
        async def completed() -> bool | None:
            response = await self.send("GET", urls.status, ctx, headers=self._headers())  # 202 while running
            return self._settled(self.json_body(response))

        await poll_until(completed, ctx, f"fal request {job_id}", provider=self.name, wait_first=wait_first)
        response = await self.send("GET", urls.result, ctx, headers=self._headers())
        return self._result(self.json_body(response), request, model, job_id)

    def _settled(self, body: Any) -> bool | None:
        """True once COMPLETED without an error, None while queued or running; a failure raises."""
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, str):
            raise self.fail(ErrorKind.INVALID_RESPONSE, "status answer has no status")
        if status in _RUNNING:
            return None
        if status != "COMPLETED":
            raise self.fail(ErrorKind.INVALID_RESPONSE, f"unknown queue status {status[:40]!r}")
        error, error_type = body.get("error"), body.get("error_type")
        if not error and not error_type:
            return True
        reason = " ".join(str(p) for p in (error_type, error) if p)
        kind = ErrorKind.CONTENT_POLICY if _POLICY.search(reason) else ErrorKind.UNAVAILABLE
        raise self.fail(kind, reason[:500], status=200)

    def _result(self, body: Any, request: GenerationRequest, model: str, job_id: str) -> AdapterResult:
        if not isinstance(body, dict):
            raise self.fail(ErrorKind.INVALID_RESPONSE, "result is not a JSON object", status=200)
        default_mime = _DEFAULT_MIME.get(request.category, "application/octet-stream")
        files = _files(body)
        media = [media_from_url(f["url"], default_mime, _mime(f)) for f in files]
        flags = body.get("has_nsfw_concepts")
        if isinstance(flags, list) and len(flags) == len(files) and files and all(f is True for f in flags):
            # fal blacks out every flagged image: nothing usable was made
            raise self.fail(ErrorKind.CONTENT_POLICY, "every image was flagged as NSFW", status=200)
        if isinstance(flags, list) and len(flags) == len(files):
            media = [m for m, flagged in zip(media, flags, strict=True) if flagged is not True]
        kept = tuple(m for m in media if m is not None)
        if not kept:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "result has no image or video URL", status=200)
        if request.category is Category.VIDEO:
            usage = Usage(seconds=_number(request.options.get("duration_s")))
        else:
            usage = Usage(images=len(files))  # flagged images are generated (and billed) too
        return AdapterResult(model=model, media=kept, usage=usage, job_id=job_id)


def _files(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Output files in the shapes fal models use: images[], image{}, video{}."""
    found: list[Any] = []
    if isinstance(body.get("images"), list):
        found.extend(body["images"])
    for key in ("image", "video"):
        if isinstance(body.get(key), dict):
            found.append(body[key])
    return [f for f in found if isinstance(f, dict) and isinstance(f.get("url"), str)]


def _mime(file: dict[str, Any]) -> str | None:
    value = file.get("content_type")
    return value if isinstance(value, str) and "/" in value else None


def _describe(body: Any) -> tuple[str, str]:
    """(message, error types) from {"detail": str | [{"loc","msg","type"}], "error_type"?}."""
    if not isinstance(body, dict):
        return "", ""
    detail, types = body.get("detail"), [str(body.get("error_type") or "")]
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [])
                parts.append(f"{loc}: {item.get('msg', 'invalid')}" if loc else str(item.get("msg", "invalid")))
                types.append(str(item.get("type") or ""))
        return "; ".join(parts), " ".join(types)
    return (str(detail) if detail else str(body.get("error") or body.get("message") or "")), " ".join(types)


def _quoted_path(path: str) -> str:
    return "/".join(quote(p, safe="") for p in path.strip("/").split("/"))


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        return 0.0
