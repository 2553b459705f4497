"""Stability AI v2beta: text-to-image (ultra, core, sd3) and the image edits, creative upscale included.

Every request is multipart/form-data, even without files (the API rejects anything else). Answers come as
raw bytes (`Accept: image/*`, verdict in the `finish-reason` header) or as JSON (`Accept: application/json`,
`{"image": <b64>, "finish_reason", "seed"}`); either is parsed whatever was asked for. Creative upscale is
the one async call: POST returns `{"id"}`, then `GET /v2beta/results/{id}` answers 202 until the image is
ready. A `finish_reason` of CONTENT_FILTERED on a 200 is a moderation refusal, not a success.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from loguru import logger

from providers.adapters.polling import poll_until, tagged_with_job
from providers.base import Adapter, CallContext, error_json, error_text
from providers.errors import ErrorKind, ProviderError, parse_retry_after, refine_kind
from providers.types import AdapterResult, Category, EditOp, GenerationRequest, Media, Usage

# One multipart part: (filename or None for a plain field, content, content type or None).
Part = tuple[str | None, bytes | str, str | None]
Fields = list[tuple[str, Part]]

RATE_LIMIT_WAIT_S = 60.0  # Stability locks a key out for 60 s after 150 requests in 10 s
UPSCALES = ("fast", "conservative", "creative")
# Upscales take a prompt as guidance only; users rarely give one, and an empty prompt is rejected.
DEFAULT_UPSCALE_PROMPT = "high quality, sharp details"
DEFAULT_OUTPAINT_PX = 256  # `/edit outpaint` without directions widens every side by this much
_SIDES = ("left", "right", "up", "down")
_EDIT_PATHS = {
    EditOp.ERASE: "edit/erase",
    EditOp.INPAINT: "edit/inpaint",
    EditOp.OUTPAINT: "edit/outpaint",
    EditOp.SEARCH_REPLACE: "edit/search-and-replace",
    EditOp.REMOVE_BACKGROUND: "edit/remove-background",
}
# The error body's `name` is more precise than the status (a 403 is moderation here, never auth).
_KIND_BY_NAME = {
    "content_moderation": ErrorKind.CONTENT_POLICY,
    "payment_required": ErrorKind.QUOTA_EXHAUSTED,
    "unauthorized": ErrorKind.AUTH,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
}
_KIND_BY_STATUS = {
    401: ErrorKind.AUTH,
    402: ErrorKind.QUOTA_EXHAUSTED,
    403: ErrorKind.CONTENT_POLICY,
    408: ErrorKind.UNAVAILABLE,
    429: ErrorKind.RATE_LIMITED,
}


def sniff_image_mime(data: bytes) -> str | None:
    """The image type from its magic bytes; None for anything that is not a PNG, JPEG, WebP or GIF."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return None


def endpoint_for(model: str) -> tuple[str, str | None]:
    """`ultra` / `core` have their own endpoints; every other name is an sd3 model sent as a field."""
    name = model.strip().lower().removeprefix("stable-image-")
    if name in ("ultra", "core"):
        return name, None
    return "sd3", (None if name == "sd3" else model.strip())


class StabilityAdapter(Adapter):
    kind: ClassVar[str] = "stability"
    categories: ClassVar[frozenset[Category]] = frozenset({Category.IMAGE, Category.IMAGE_EDIT})

    @property
    def accept(self) -> str:
        """Raw bytes by default (a third smaller than base64); `options.accept = "json"` switches."""
        wanted = str(self.config.options.get("accept", "image"))
        return "application/json" if "json" in wanted else "image/*"

    def headers(self, accept: str) -> dict[str, str]:
        return {**self.config.headers, "Authorization": f"Bearer {self.config.api_key or ''}", "Accept": accept}

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        if request.category is Category.IMAGE:
            path, fields = self._generate_fields(request, model)
        elif request.category is Category.IMAGE_EDIT:
            path, fields = self._edit_fields(request)
        else:
            raise self.fail(ErrorKind.BAD_REQUEST, f"stability does not serve {request.category}")
        if path.endswith("upscale/creative"):
            return await self._creative(path, fields, model, ctx)
        response = await self.send("POST", self.url(f"v2beta/stable-image/{path}"), ctx,
                                   headers=self.headers(self.accept), files=fields)
        return self._result(response, model, path)

    async def resume(self, job_id: str, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        """Only ever polls the results URL: re-posting would start (and bill) a second upscale."""
        return self._result(await self._poll(job_id, ctx), model, f"results/{job_id}", job_id)

    # --- requests ------------------------------------------------------------------------------

    def _output_format(self, options: Mapping[str, Any]) -> str:
        return str(options.get("output_format") or self.config.options.get("output_format") or "png")

    def _generate_fields(self, request: GenerationRequest, model: str) -> tuple[str, Fields]:
        if not request.prompt.strip():
            raise self.fail(ErrorKind.BAD_REQUEST, "a prompt is required")
        endpoint, model_field = endpoint_for(model)
        fields: Fields = [("prompt", (None, request.prompt, None))]
        if model_field:
            fields.append(("model", (None, model_field, None)))
        for key in ("negative_prompt", "aspect_ratio", "seed", "style_preset"):
            if request.options.get(key) not in (None, ""):
                fields.append((key, (None, str(request.options[key]), None)))
        fields.append(("output_format", (None, self._output_format(request.options), None)))
        return f"generate/{endpoint}", fields

    def _edit_fields(self, request: GenerationRequest) -> tuple[str, Fields]:
        if request.image is None:
            raise self.fail(ErrorKind.BAD_REQUEST, "an image is required for editing")
        op = request.edit_op
        if op is None:
            raise self.fail(ErrorKind.BAD_REQUEST, "no edit operation given")
        ext = request.image_mime.rsplit("/", 1)[-1]
        fields: Fields = [("image", (f"image.{ext}", request.image, request.image_mime))]
        if request.mask is not None and op in (EditOp.ERASE, EditOp.INPAINT):
            fields.append(("mask", ("mask.png", request.mask, "image/png")))
        path, extra = self._op_fields(request, op)
        fields += [(key, (None, value, None)) for key, value in extra]
        fields.append(("output_format", (None, self._output_format(request.options), None)))
        return path, fields

    def _op_fields(self, request: GenerationRequest, op: EditOp) -> tuple[str, list[tuple[str, str]]]:
        """The endpoint and the plain fields of one edit operation."""
        prompt, options = request.prompt.strip(), request.options
        if op is EditOp.UPSCALE:
            return self._upscale_fields(request)
        if op in (EditOp.ERASE, EditOp.REMOVE_BACKGROUND):
            return _EDIT_PATHS[op], []  # these take no prompt
        if op is EditOp.OUTPAINT:
            try:
                sides = [(s, str(int(options[s]))) for s in _SIDES if options.get(s)]
            except (TypeError, ValueError) as exc:
                raise self.fail(ErrorKind.BAD_REQUEST, "outpaint sides must be whole pixels") from exc
            px = str(int(self.config.options.get("outpaint_px", DEFAULT_OUTPAINT_PX)))
            extra = sides or [(s, px) for s in _SIDES]
            return _EDIT_PATHS[op], extra + ([("prompt", prompt)] if prompt else [])
        if not prompt:
            raise self.fail(ErrorKind.BAD_REQUEST, f"{op} needs a prompt")
        if op is EditOp.INPAINT:
            return _EDIT_PATHS[op], [("prompt", prompt)]
        search = request.search_prompt or options.get("search_prompt")
        if not search:
            raise self.fail(ErrorKind.BAD_REQUEST, "search_replace needs a search prompt")
        return _EDIT_PATHS[op], [("prompt", prompt), ("search_prompt", str(search))]

    def _upscale_fields(self, request: GenerationRequest) -> tuple[str, list[tuple[str, str]]]:
        flavour = str(request.options.get("upscale") or self.config.options.get("upscale") or "fast")
        if flavour not in UPSCALES:
            raise self.fail(ErrorKind.BAD_REQUEST, f"unknown upscale {flavour!r}; use one of {UPSCALES}")
        if flavour == "fast":
            return "upscale/fast", []
        default = str(self.config.options.get("upscale_prompt", DEFAULT_UPSCALE_PROMPT))
        return f"upscale/{flavour}", [("prompt", request.prompt.strip() or default)]

    # --- async creative upscale ----------------------------------------------------------------

    async def _creative(self, path: str, fields: Fields, model: str, ctx: CallContext) -> AdapterResult:
        response = await self.send("POST", self.url(f"v2beta/stable-image/{path}"), ctx,
                                   headers=self.headers("application/json"), files=fields)
        body = self.json_body(response)
        job_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "creative upscale answered without an id",
                            status=response.status_code)
        ctx.report_job(job_id)  # before polling: a restart from here on resumes instead of re-paying
        logger.debug("stability {}: creative upscale job {} started", self.name, job_id)
        return self._result(await self._poll(job_id, ctx, wait_first=True), model, path, job_id)

    async def _poll(self, job_id: str, ctx: CallContext, wait_first: bool = False) -> httpx.Response:
        async def fetch() -> httpx.Response | None:
            response = await self.send("GET", self.url(f"v2beta/results/{job_id}"), ctx,
                                       headers=self.headers(self.accept))
            return None if response.status_code == 202 else response

        with tagged_with_job(job_id):  # the manager keeps the id to resume rather than re-post
            return await poll_until(fetch, ctx, f"creative upscale {job_id}", provider=self.name,
                                    wait_first=wait_first)

    # --- responses -----------------------------------------------------------------------------

    def _result(self, response: httpx.Response, model: str, path: str, job_id: str | None = None) -> AdapterResult:
        data, finish, seed = self._image(response)
        if finish == "CONTENT_FILTERED":
            raise self.fail(ErrorKind.CONTENT_POLICY, "the image was filtered by content moderation",
                            status=response.status_code, job_id=job_id)
        if finish not in ("", "SUCCESS"):
            raise self.fail(ErrorKind.INVALID_RESPONSE, f"unknown finish reason {finish!r}",
                            status=response.status_code, job_id=job_id)
        mime = sniff_image_mime(data)
        if mime is None:
            what = "an empty body" if not data else "a body that is not an image"
            raise self.fail(ErrorKind.INVALID_RESPONSE, f"{path} answered {what}",
                            status=response.status_code, job_id=job_id)
        logger.debug("stability {}: {} -> {} bytes {} (seed {})", self.name, path, len(data), mime, seed)
        return AdapterResult(model=model, media=(Media(mime=mime, data=data),), usage=Usage(images=1),
                             job_id=job_id)

    def _image(self, response: httpx.Response) -> tuple[bytes, str, str]:
        """(image bytes, finish reason upper-cased, seed) from a raw-bytes or a JSON answer."""
        if "json" not in response.headers.get("content-type", ""):
            return (response.content, response.headers.get("finish-reason", "").upper(),
                    response.headers.get("seed", ""))
        body = self.json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("image"), str):
            raise self.fail(ErrorKind.INVALID_RESPONSE, "JSON answer without an image",
                            status=response.status_code)
        try:
            data = base64.b64decode(body["image"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "image is not valid base64",
                            status=response.status_code) from exc
        return data, str(body.get("finish_reason") or "").upper(), str(body.get("seed", ""))

    def error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = error_json(response)
        name = str(body.get("name") or "") if isinstance(body, dict) else ""
        errors = body.get("errors") if isinstance(body, dict) else None
        detail = "; ".join(str(e) for e in errors) if isinstance(errors, list) else error_text(response)
        message = f"{name}: {detail}" if name else (detail or response.reason_phrase)
        kind = _KIND_BY_NAME.get(name) or _KIND_BY_STATUS.get(status)
        if kind is None:
            kind = ErrorKind.UNAVAILABLE if status >= 500 else refine_kind(ErrorKind.BAD_REQUEST, message)
        retry = parse_retry_after(response.headers)
        if kind is ErrorKind.RATE_LIMITED and retry is None:
            retry = RATE_LIMIT_WAIT_S
        return self.fail(kind, message, status=status, retry_after_s=retry)
