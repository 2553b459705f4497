"""OpenAI-compatible chat (plain and streamed) for every OpenAI-style service (providers-wire.md 1-2).

A user turn with images is sent as content parts: its text as a `text` part, each image as an `image_url`
part holding a data URI (`data:image/jpeg;base64,...`); every other turn keeps plain string content.

One class serves them all; a kind only changes the default base URL, the categories offered, the
error-body dialect and a few headers, all from the one table in `providers.kinds`. `ADAPTER_CLASSES` maps
each OpenAI-compatible kind to its class (a subclass that only names its kind).

Streams: a stream cut by the network (or timing out) raises `unavailable`, even after text was
yielded, because what was said is incomplete. A stream that ends cleanly without a usage chunk
yields a last chunk with `usage=None` (the manager may estimate then).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx
from loguru import logger

from providers.adapters.openai_media import OpenAIMedia
from providers.adapters.polling import data_uri
from providers.adapters.sse import is_event_stream, iter_sse, open_stream
from providers.base import CallContext, whole
from providers.config import usd_to_micros
from providers.errors import ErrorKind
from providers.kinds import KINDS
from providers.types import AdapterResult, Category, ChatMessage, GenerationRequest, StreamChunk, Usage

_TEXT, _IMAGE, _EDIT, _AUDIO = Category.TEXT, Category.IMAGE, Category.IMAGE_EDIT, Category.AUDIO
_TRANSCRIPTION = Category.TRANSCRIPTION


@dataclass(slots=True)
class _StreamState:
    model: str
    usage: Usage | None = None
    cost_micros: int | None = None
    said_something: bool = False


class OpenAICompatAdapter(OpenAIMedia):
    kind = "openai"  # base URL, categories, dialect and headers follow from the kind (providers.kinds)
    streams_text = True

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        if request.category not in self.categories:
            raise self.fail(ErrorKind.BAD_REQUEST, f"{self.kind} does not serve {request.category}")
        logger.debug("{}: {} with {}", self.name, request.category, model)
        if request.category is _IMAGE:
            return await self.generate_image(request, model, ctx)
        if request.category is _EDIT:
            return await self.edit_image(request, model, ctx)
        if request.category is _AUDIO:
            return await self.speech(request, model, ctx)
        if request.category is _TRANSCRIPTION:
            return await self.transcription(request, model, ctx)
        response = await self.send("POST", self.url("chat/completions"), ctx,
                                   json=self.chat_body(request, model, stream=False), headers=self.headers())
        return self.chat_result(response, model)

    async def stream_text(self, request: GenerationRequest, model: str,
                          ctx: CallContext) -> AsyncIterator[StreamChunk]:
        body = self.chat_body(request, model, stream=True)
        state = _StreamState(model)
        async with open_stream(self, self.url("chat/completions"), ctx, json=body,
                               headers=self.headers()) as response:
            if not is_event_stream(response):
                # A proxy that ignored stream=true, an error object on 200, or garbage.
                result = self.chat_result(await whole(response, ctx), model)
                yield StreamChunk(text=result.text or "")
                yield StreamChunk(usage=result.usage, cost_micros=result.cost_micros, model=result.model)
                return
            async for event in iter_sse(response):
                if event.data.strip() == "[DONE]":
                    break
                text = self._on_chunk(state, event.data)
                if text:
                    state.said_something = True
                    yield StreamChunk(text=text)
        yield StreamChunk(usage=state.usage, cost_micros=state.cost_micros, model=state.model)

    # --- request and response ----------------------------------------------------------------

    def chat_body(self, request: GenerationRequest, model: str, *, stream: bool) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role, "content": _content(m)} for m in request.chat_messages()]
        body: dict[str, Any] = {"model": model, "messages": messages}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def chat_result(self, response: httpx.Response, model: str) -> AdapterResult:
        payload = self.json_object(response)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise self.invalid("no choices in the chat answer")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise self.invalid("the first choice has no message")
        content = message.get("content")
        self._check_policy(message.get("refusal"), choices[0].get("finish_reason"), bool(content))
        if not isinstance(content, str):
            raise self.invalid("the message has no text content")
        usage, cost = self._usage(payload.get("usage"))
        return AdapterResult(model=_model_of(payload, model), text=content, usage=usage or Usage(),
                             cost_micros=cost)

    def _on_chunk(self, state: _StreamState, data: str) -> str:
        """One `data:` event of a stream; returns its text delta."""
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise self.invalid("a stream event is not JSON") from exc
        if not isinstance(payload, dict):
            raise self.invalid("a stream event is not a JSON object")
        if payload.get("error"):
            raise self.payload_error(payload)
        state.model = _model_of(payload, state.model)
        if payload.get("usage") is not None:
            state.usage, state.cost_micros = self._usage(payload["usage"])
        choices = payload.get("choices") or []
        if not isinstance(choices, list):
            raise self.invalid("stream choices is not a list")
        text = ""
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # we ask for one choice; ignore anything else
            delta = choice.get("delta") or {}
            piece = delta.get("content") if isinstance(delta, dict) else None
            text += piece if isinstance(piece, str) else ""
            refusal = delta.get("refusal") if isinstance(delta, dict) else None
            self._check_policy(refusal, choice.get("finish_reason"), state.said_something or bool(text))
        return text

    def _check_policy(self, refusal: Any, finish_reason: Any, has_text: bool) -> None:
        if isinstance(refusal, str) and refusal:
            raise self.fail(ErrorKind.CONTENT_POLICY, f"refused: {refusal[:200]}", status=200)
        if finish_reason == "content_filter" and not has_text:
            raise self.fail(ErrorKind.CONTENT_POLICY, "the answer was withheld by the content filter", status=200)

    def _usage(self, raw: Any) -> tuple[Usage | None, int | None]:
        """Token usage, and OpenRouter's own `usage.cost` (USD) when it reports one."""
        if raw is None:
            return None, None
        if not isinstance(raw, dict):
            raise self.invalid("usage is not an object")
        counts = [raw.get("prompt_tokens", 0), raw.get("completion_tokens", 0)]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            raise self.invalid("usage token counts are not integers")
        cost = raw.get("cost")
        cost_micros = None
        if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0:
            cost_micros = usd_to_micros(cost)
        return Usage(input_tokens=counts[0], output_tokens=counts[1]), cost_micros


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """Plain text, or content parts when the turn shows images (those not fetched are left out)."""
    images = [i for i in message.images if i.data]
    if not images:
        return message.content
    parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    for image in images:
        parts.append({"type": "image_url", "image_url": {"url": data_uri(image.data, image.mime)}})
    return parts


def _model_of(payload: Mapping[str, Any], fallback: str) -> str:
    """The model the provider says served (OpenRouter resolves routers like `openrouter/auto`)."""
    model = payload.get("model")
    return model if isinstance(model, str) and model else fallback


def _adapter_for(kind: str) -> type[OpenAICompatAdapter]:
    """The class of one OpenAI-compatible kind: OpenAICompatAdapter, or a subclass that only names its kind."""
    if kind == OpenAICompatAdapter.kind:
        return OpenAICompatAdapter
    name = f"{kind.capitalize()}Adapter"
    made = type(name, (OpenAICompatAdapter,), {"kind": kind, "__module__": __name__, "__qualname__": name})
    return cast("type[OpenAICompatAdapter]", made)


ADAPTER_CLASSES: dict[str, type[OpenAICompatAdapter]] = {
    kind: _adapter_for(kind) for kind, info in KINDS.items() if info.openai_dialect is not None}

__all__ = ["ADAPTER_CLASSES", "OpenAICompatAdapter"]
