"""Hugging Face Inference (router, hf-inference provider): text-to-image.

`POST {base}/hf-inference/models/{model_id}` with `{"inputs": prompt, "parameters": {...}}` -> raw image
bytes. Errors are mostly `{"error": "..."}`; a cold model answers **503** `{"error": "Model X is currently
loading", "estimated_time": 20.0}`, which is `unavailable` for exactly `estimated_time` seconds. Some
failures come back as 200 with an `{"error"}` JSON body: those are classified, never taken as an image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from loguru import logger

from providers.adapters.stability import sniff_image_mime
from providers.base import Adapter, CallContext, error_json, error_text
from providers.errors import ErrorKind, ProviderError, parse_retry_after, refine_kind
from providers.types import AdapterResult, Category, GenerationRequest, Media, Usage

# The request's options are shared by every provider of a route (fallback never changes them), so only
# the ones HF's text-to-image task knows are passed on: unknown parameters are rejected with a 400/422.
HF_PARAMETERS = ("negative_prompt", "width", "height", "num_inference_steps", "guidance_scale", "scheduler",
                 "seed")
_KIND_BY_STATUS = {
    401: ErrorKind.AUTH,
    403: ErrorKind.AUTH,
    402: ErrorKind.QUOTA_EXHAUSTED,
    429: ErrorKind.RATE_LIMITED,
    # The model is missing or retired on this provider: another provider can still serve the prompt.
    404: ErrorKind.UNAVAILABLE,
    410: ErrorKind.UNAVAILABLE,
    408: ErrorKind.UNAVAILABLE,
}


def hf_parameters(options: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """HF `parameters` from the request options; `size: "WxH"` becomes width and height."""
    params: dict[str, Any] = dict(defaults or {})
    size = options.get("size")
    if isinstance(size, str) and "x" in size:
        width, _, height = size.lower().partition("x")
        if width.isdigit() and height.isdigit():
            params.update(width=int(width), height=int(height))
    params.update({k: options[k] for k in HF_PARAMETERS if options.get(k) is not None})
    return params


def _message(body: Any) -> str:
    """The error text from `{"error": str | [str] | {"message"}}`; "" when there is none."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    if isinstance(err, list):
        return "; ".join(str(e) for e in err)
    return str(err) if err else ""


def _estimated_time(body: Any) -> float | None:
    value = body.get("estimated_time") if isinstance(body, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class HuggingFaceAdapter(Adapter):
    kind: ClassVar[str] = "huggingface"
    categories: ClassVar[frozenset[Category]] = frozenset({Category.IMAGE})

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        if request.category is not Category.IMAGE:
            raise self.fail(ErrorKind.BAD_REQUEST, f"huggingface does not serve {request.category}")
        if not request.prompt.strip():
            raise self.fail(ErrorKind.BAD_REQUEST, "a prompt is required")
        payload: dict[str, Any] = {"inputs": request.prompt}
        params = hf_parameters(request.options, self.config.options.get("parameters"))
        if params:
            payload["parameters"] = params
        headers = {**self.config.headers, "Authorization": f"Bearer {self.config.api_key or ''}"}
        url = self.url(f"hf-inference/models/{quote(model, safe='/')}")
        response = await self.send("POST", url, ctx, headers=headers, json=payload)
        media = self._image(response)
        logger.debug("huggingface {}: {} -> {} bytes {}", self.name, model, len(media.data or b""), media.mime)
        return AdapterResult(model=model, media=(media,), usage=Usage(images=1))

    def _image(self, response: httpx.Response) -> Media:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        data = response.content
        if "json" in ctype:
            body = self.json_body(response)
            if _message(body):
                raise self._classify(response.status_code, body, response.headers)
            raise self.fail(ErrorKind.INVALID_RESPONSE, "JSON answer where an image was expected",
                            status=response.status_code)
        looks_textual = data.lstrip()[:1] in (b"{", b"[", b"<")
        mime = sniff_image_mime(data) or (ctype if ctype.startswith("image/") and not looks_textual else None)
        if not data or mime is None:
            what = "an empty body" if not data else f"a body that is not an image ({ctype or 'unlabelled'})"
            raise self.fail(ErrorKind.INVALID_RESPONSE, f"answered {what}", status=response.status_code)
        return Media(mime=mime, data=data)

    def error(self, response: httpx.Response) -> ProviderError:
        body = error_json(response)
        return self._classify(response.status_code, body, response.headers, error_text(response))

    def _classify(self, status: int, body: Any, headers: Mapping[str, str], raw: str = "") -> ProviderError:
        message = _message(body) or raw or f"HTTP {status}"
        estimated = _estimated_time(body)
        retry = parse_retry_after(headers)
        loading = "loading" in message.lower() and (status >= 500 or status < 400)
        if estimated is not None or loading:
            # A cold model: waiting `estimated_time` is what works, a different provider works now.
            return self.fail(ErrorKind.UNAVAILABLE, message, status=status,
                             retry_after_s=estimated if estimated is not None else retry)
        if status < 400:
            # An error reported with a 200: classify from the words, else treat it as a provider failure.
            kind = refine_kind(ErrorKind.BAD_REQUEST, message)
            kind = ErrorKind.UNAVAILABLE if kind is ErrorKind.BAD_REQUEST else kind
        elif status in _KIND_BY_STATUS:
            kind = refine_kind(_KIND_BY_STATUS[status], message)
        else:
            kind = ErrorKind.UNAVAILABLE if status >= 500 else refine_kind(ErrorKind.BAD_REQUEST, message)
        return self.fail(kind, message, status=status, retry_after_s=retry)
