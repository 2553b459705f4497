"""ElevenLabs text-to-speech: `POST /v1/text-to-speech/{voice_id}?output_format=...` -> raw audio bytes.

Errors live under `detail`, in a new form `{"detail": {"type", "code", "message", "status", "request_id"}}`
and an old one `{"detail": {"status", "message"}}` (422 validation: `{"detail": [{"loc", "msg", "type"}]}`).
The code decides the kind before the status does: a spent character quota comes as **401
`quota_exceeded`**, which must park the provider as quota, not as a bad key.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from loguru import logger

from providers.base import Adapter, CallContext, error_json, error_text
from providers.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after, refine_kind
from providers.types import AdapterResult, Category, GenerationRequest, Media, Usage

DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"  # "Rachel": a premade voice every account has
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
_MIME_BY_CODEC = {"mp3": "audio/mpeg", "opus": "audio/ogg", "wav": "audio/wav", "pcm": "audio/L16",
                  "ulaw": "audio/basic", "alaw": "audio/x-alaw-basic"}
# `system_busy` is a 429 meaning "our servers are loaded, try shortly": a short cooldown (rate_limited)
# fits it better than `unavailable`, which would count towards opening the circuit breaker for what is a
# passing load spike the provider itself asks us to wait out.
_KIND_BY_CODE = {
    "invalid_api_key": ErrorKind.AUTH,
    "missing_api_key": ErrorKind.AUTH,
    "detected_unusual_activity": ErrorKind.AUTH,  # free tier disabled for the account: not healing soon
    "quota_exceeded": ErrorKind.QUOTA_EXHAUSTED,
    "payment_required": ErrorKind.QUOTA_EXHAUSTED,
    "voice_not_found": ErrorKind.BAD_REQUEST,
    "max_character_limit_exceeded": ErrorKind.BAD_REQUEST,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "concurrent_limit_exceeded": ErrorKind.RATE_LIMITED,
    "too_many_concurrent_requests": ErrorKind.RATE_LIMITED,
    "system_busy": ErrorKind.RATE_LIMITED,
}


def is_mp3(data: bytes) -> bool:
    """An ID3 tag or an MPEG audio frame sync at the start."""
    return data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _detail(body: Any) -> tuple[str, str]:
    """(code, message) from either error form; ("", "") when the body has no `detail`."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = detail.get("code") or detail.get("status") or ""
        return str(code), str(detail.get("message") or "")
    if isinstance(detail, list):  # FastAPI validation errors
        msgs = [str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail]
        return "validation_error", "; ".join(msgs)
    if isinstance(detail, str):
        return "", detail
    return "", ""


class ElevenLabsAdapter(Adapter):
    kind: ClassVar[str] = "elevenlabs"
    categories: ClassVar[frozenset[Category]] = frozenset({Category.AUDIO})

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        if request.category is not Category.AUDIO:
            raise self.fail(ErrorKind.BAD_REQUEST, f"elevenlabs does not serve {request.category}")
        text = request.prompt
        if not text.strip():
            raise self.fail(ErrorKind.BAD_REQUEST, "there is no text to speak")
        voice_id = str(request.options.get("voice_id") or self.config.options.get("voice_id") or DEFAULT_VOICE_ID)
        output_format = str(request.options.get("output_format")
                            or self.config.options.get("output_format") or DEFAULT_OUTPUT_FORMAT)
        body: dict[str, Any] = {"text": text, "model_id": model}
        settings = request.options.get("voice_settings") or self.config.options.get("voice_settings")
        if settings:
            body["voice_settings"] = dict(settings)
        headers = {**self.config.headers, "xi-api-key": self.config.api_key or ""}
        response = await self.send("POST", self.url(f"v1/text-to-speech/{quote(voice_id, safe='')}"), ctx,
                                   params={"output_format": output_format}, headers=headers, json=body)
        media = self._audio(response, output_format)
        logger.debug("elevenlabs {}: {} chars -> {} bytes {}", self.name, len(text), len(media.data or b""),
                     media.mime)
        # Usage is the text length: ElevenLabs' `character-cost` header counts credits, which differ
        # from characters on discounted models, and prices here are per character.
        return AdapterResult(model=model, media=(media,), usage=Usage(characters=len(text)))

    def _audio(self, response: httpx.Response, output_format: str) -> Media:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        data = response.content
        codec = output_format.split("_", 1)[0].lower()
        if not data:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "empty audio body", status=response.status_code)
        if "json" in ctype or ctype.startswith("text/") or data.lstrip()[:1] in (b"{", b"<"):
            raise self.fail(ErrorKind.INVALID_RESPONSE, f"expected audio, got {ctype or 'an unlabelled body'}",
                            status=response.status_code)
        if codec == "mp3" and not is_mp3(data):
            raise self.fail(ErrorKind.INVALID_RESPONSE, "body is not MP3 audio", status=response.status_code)
        mime = ctype if ctype.startswith("audio/") else _MIME_BY_CODEC.get(codec, "application/octet-stream")
        return Media(mime=mime, data=data)

    def error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = error_json(response)
        code, message = _detail(body)
        text = message or error_text(response) or response.reason_phrase
        kind = _KIND_BY_CODE.get(code)
        if kind is None:
            kind = refine_kind(kind_from_status(status), f"{code} {text}")
        full = f"{code}: {text}" if code else text
        return self.fail(kind, full, status=status, retry_after_s=parse_retry_after(response.headers))
