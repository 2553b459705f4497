"""The plumbing every OpenAI-style call shares: auth, base URL, error bodies (providers-wire.md 1).

A subclass that names an OpenAI-compatible `kind` takes its default base URL, categories, error dialect
and headers from `providers.kinds`. `OpenAIMedia` (openai_media) adds the media endpoints on top, and
`OpenAICompatAdapter` (openai_compat) chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from providers.adapters.openai_errors import ErrorInfo, classify, classify_payload
from providers.base import Adapter, error_text
from providers.errors import ErrorKind, ProviderError
from providers.kinds import KINDS, OpenAIDialect
from providers.types import Category

# What the OpenAI-style transcription endpoints read (OpenAI and Groq list the same formats), by MIME type,
# with the file-name extension they tell the format by.
AUDIO_EXTENSIONS = {
    "audio/ogg": "ogg", "audio/opus": "ogg", "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mp4": "m4a",
    "audio/m4a": "m4a", "audio/x-m4a": "m4a", "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav",
    "audio/webm": "webm", "audio/flac": "flac", "audio/x-flac": "flac", "video/mp4": "mp4", "video/webm": "webm",
    "video/mpeg": "mpeg",
}
_TRANSCRIBABLE = frozenset(AUDIO_EXTENSIONS)


class OpenAIBase(Adapter):
    dialect: ClassVar[OpenAIDialect] = "openai"
    default_base_url: ClassVar[str] = KINDS["openai"].base_url
    extra_headers: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        info = KINDS.get(cls.kind)
        if info is not None and info.openai_dialect is not None:
            cls.categories = info.categories
            cls.dialect = info.openai_dialect
            cls.default_base_url = info.base_url
            cls.extra_headers = info.headers
            cls.vision = info.vision
            cls.audio_formats = _TRANSCRIBABLE if Category.TRANSCRIPTION in info.categories else frozenset()

    def url(self, path: str) -> str:
        base = self.config.base_url or self.default_base_url
        return base.rstrip("/") + "/" + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        if not self.config.api_key:
            raise self.fail(ErrorKind.AUTH, f"no API key (set {self.config.api_key_env})")
        return {**self.extra_headers, **self.config.headers, "Authorization": f"Bearer {self.config.api_key}"}

    def error(self, response: httpx.Response) -> ProviderError:
        info = classify(response.status_code, response.headers, error_text(response, 4000), self.dialect)
        return self._from_info(info)

    def payload_error(self, payload: Mapping[str, Any]) -> ProviderError:
        """An `error` object inside an HTTP 200 answer or a stream event (OpenRouter does both)."""
        return self._from_info(classify_payload(payload, self.dialect))

    def _from_info(self, info: ErrorInfo) -> ProviderError:
        message = info.message
        if self.config.api_key:
            message = message.replace(self.config.api_key, "***")
        return self.fail(info.kind, message, status=info.status, retry_after_s=info.retry_after_s)

    def invalid(self, message: str, status: int | None = 200) -> ProviderError:
        return self.fail(ErrorKind.INVALID_RESPONSE, message, status=status)

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        """A JSON object body; an `error` object in it (on HTTP 200) is that error."""
        payload = self.json_body(response)
        if not isinstance(payload, dict):
            raise self.invalid("response body is not a JSON object")
        if payload.get("error"):
            raise self.payload_error(payload)
        return payload
