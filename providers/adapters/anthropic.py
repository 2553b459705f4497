"""Anthropic Messages API, plain and streamed (providers-wire.md 3).

Anthropic wants `system` at the top level and a conversation of alternating user/assistant turns that
starts with the user, so the history is normalised before sending. A stream cut by the network raises
`unavailable`; one that ends cleanly without `message_stop` still yields its usage so far.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from loguru import logger

from providers.adapters.sse import is_event_stream, iter_sse, open_stream
from providers.base import Adapter, CallContext, error_text, whole
from providers.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after, refine_kind
from providers.types import AdapterResult, Category, ChatMessage, GenerationRequest, ImagePart, StreamChunk, Usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

_TYPE_KINDS = {
    "invalid_request_error": ErrorKind.BAD_REQUEST,  # refined: "credit balance is too low" is quota
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "billing_error": ErrorKind.QUOTA_EXHAUSTED,
    "not_found_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.UNAVAILABLE,
    "overloaded_error": ErrorKind.UNAVAILABLE,
    "timeout_error": ErrorKind.UNAVAILABLE,
}


def alternate(messages: tuple[ChatMessage, ...]) -> tuple[list[dict[str, Any]], list[str]]:
    """Anthropic's turns: user first, roles alternating (same-role neighbours merged), no empty turn.

    Returns the turns and any system texts found in the history (they go to the top-level `system`).
    Leading assistant turns are dropped: a trimmed history may start mid-conversation. A turn stays plain
    text unless it shows images: then its content is blocks, each image an `image` block with a base64
    `source`, before the text (the order Anthropic recommends).
    """
    turns: list[tuple[str, list[str], list[dict[str, Any]]]] = []  # role, texts, image blocks
    systems: list[str] = []
    for message in messages:
        if message.role == "system":
            systems.append(message.content)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        images = [_image_block(i) for i in message.images if i.data] if role == "user" else []
        texts = [message.content] if message.content.strip() else []
        if not (texts or images) or (not turns and role == "assistant"):
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(texts)
            turns[-1][2].extend(images)
        else:
            turns.append((role, texts, images))
    return [{"role": role, "content": _turn_content(texts, images)} for role, texts, images in turns], systems


def _turn_content(texts: list[str], images: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    text = "\n\n".join(texts)
    if not images:
        return text
    return [*images, *([{"type": "text", "text": text}] if text else [])]


def _image_block(image: ImagePart) -> dict[str, Any]:
    data = base64.b64encode(image.data).decode("ascii")
    return {"type": "image", "source": {"type": "base64", "media_type": image.mime, "data": data}}


@dataclass(slots=True)
class _StreamState:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    seen_usage: bool = False
    done: bool = False


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    categories = frozenset({Category.TEXT})
    streams_text = True
    vision = True  # `image` blocks with a base64 `source`

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        if request.category is not Category.TEXT:
            raise self.fail(ErrorKind.BAD_REQUEST, f"anthropic does not serve {request.category}")
        logger.debug("{}: text with {}", self.name, model)
        response = await self.send("POST", self.url("v1/messages"), ctx, json=self.body(request, model),
                                   headers=self.headers())
        return self.result(response, model)

    async def stream_text(self, request: GenerationRequest, model: str,
                          ctx: CallContext) -> AsyncIterator[StreamChunk]:
        body = {**self.body(request, model), "stream": True}
        state = _StreamState(model)
        async with open_stream(self, self.url("v1/messages"), ctx, json=body, headers=self.headers()) as response:
            if not is_event_stream(response):
                result = self.result(await whole(response, ctx), model)  # a proxy that ignored stream=true
                yield StreamChunk(text=result.text or "")
                yield StreamChunk(usage=result.usage, model=result.model)
                return
            async for event in iter_sse(response):
                text = self._on_event(state, event.event, event.data)
                if text:
                    yield StreamChunk(text=text)
                if state.done:
                    break
        usage = Usage(input_tokens=state.input_tokens, output_tokens=state.output_tokens)
        yield StreamChunk(usage=usage if state.seen_usage else None, model=state.model)

    # --- request and response ----------------------------------------------------------------

    def url(self, path: str) -> str:
        return (self.config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/" + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        if not self.config.api_key:
            raise self.fail(ErrorKind.AUTH, f"no API key (set {self.config.api_key_env})")
        version = str(self.config.options.get("anthropic_version") or DEFAULT_VERSION)
        return {**self.config.headers, "x-api-key": self.config.api_key, "anthropic-version": version}

    def body(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        turns, systems = alternate(request.chat_messages())
        if not turns:
            raise self.fail(ErrorKind.BAD_REQUEST, "nothing to send: the conversation has no user message")
        system = "\n\n".join(s for s in ([request.system] if request.system else []) + systems if s)
        body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
                                "messages": turns}
        if system:
            body["system"] = system
        return body

    def result(self, response: httpx.Response, model: str) -> AdapterResult:
        payload = self.json_body(response)
        if not isinstance(payload, dict):
            raise self._invalid("response body is not a JSON object")
        if payload.get("type") == "error":
            raise self._error_event(payload, response.status_code)
        content = payload.get("content")
        if not isinstance(content, list):
            raise self._invalid("the message has no content list")
        self._check_stop(payload.get("stop_reason"))
        text = "".join(b["text"] for b in content
                       if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))
        usage = self._usage(payload.get("usage"), None)
        if usage is None:
            raise self._invalid("the message has no usage")
        return AdapterResult(model=_model_of(payload, model), text=text, usage=usage)

    def _on_event(self, state: _StreamState, name: str | None, data: str) -> str:
        """One SSE event; returns its text. Unknown events and pings are ignored, as the docs ask."""
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise self._invalid(f"a stream event ({name}) is not JSON") from exc
        if not isinstance(payload, dict):
            raise self._invalid("a stream event is not a JSON object")
        kind = name or payload.get("type")
        if kind == "error":
            raise self._error_event(payload, None)
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            message = payload["message"]
            state.model = _model_of(message, state.model)
            self._merge_usage(state, message.get("usage"))
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                return str(delta["text"])
        elif kind == "message_delta":
            delta = payload.get("delta")
            self._check_stop(delta.get("stop_reason") if isinstance(delta, dict) else None)
            self._merge_usage(state, payload.get("usage"))
        elif kind == "message_stop":
            state.done = True
        return ""

    def _merge_usage(self, state: _StreamState, raw: Any) -> None:
        """message_start carries input tokens; message_delta's usage is cumulative (later wins)."""
        usage = self._usage(raw, state)
        if usage is not None:
            state.input_tokens, state.output_tokens = usage.input_tokens, usage.output_tokens
            state.seen_usage = True

    def _usage(self, raw: Any, state: _StreamState | None) -> Usage | None:
        if not isinstance(raw, dict):
            return None
        fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
        values: dict[str, int] = {}
        for name in fields:
            value = raw.get(name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self._invalid(f"usage.{name} is not a count")
            values[name] = value
        cached = values.get("cache_creation_input_tokens", 0) + values.get("cache_read_input_tokens", 0)
        has_input = "input_tokens" in values or cached
        # Cache writes and reads are input the provider bills for, so they count as input here.
        input_tokens = values.get("input_tokens", 0) + cached if has_input else (state.input_tokens if state else 0)
        output = values.get("output_tokens", state.output_tokens if state else 0)
        return Usage(input_tokens=input_tokens, output_tokens=output)

    def _check_stop(self, stop_reason: Any) -> None:
        if stop_reason == "refusal":
            raise self.fail(ErrorKind.CONTENT_POLICY, "the model declined to answer (stop_reason refusal)",
                            status=200)

    # --- errors --------------------------------------------------------------------------------

    def error(self, response: httpx.Response) -> ProviderError:
        text = error_text(response, 4000)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        # A non-JSON body (a proxy's page) still classifies by status; an HTML page says nothing useful.
        fallback = "" if text.lstrip().startswith("<") else " ".join(text.split())[:200]
        error = self._error_event(payload if isinstance(payload, dict) else {}, response.status_code, fallback)
        error.retry_after_s = parse_retry_after(response.headers)
        return error

    def _error_event(self, payload: dict[str, Any], status: int | None, fallback: str = "") -> ProviderError:
        err = payload.get("error")
        err = err if isinstance(err, dict) else {}
        err_type = str(err.get("type") or "")
        message = str(err.get("message") or "") or fallback or err_type or f"HTTP {status}"
        if status is not None and (status >= 500 or status == 408):
            kind = ErrorKind.UNAVAILABLE  # 500 api_error, 529 overloaded_error, gateway pages
        else:
            base = _TYPE_KINDS.get(err_type) or (kind_from_status(status) if status else ErrorKind.UNAVAILABLE)
            kind = refine_kind(base, f"{err_type} {message}") if base is ErrorKind.BAD_REQUEST else base
        return self.fail(kind, message[:300], status=status)

    def _invalid(self, message: str) -> ProviderError:
        return self.fail(ErrorKind.INVALID_RESPONSE, message, status=200)


def _model_of(payload: dict[str, Any], fallback: str) -> str:
    model = payload.get("model")
    return model if isinstance(model, str) and model else fallback
