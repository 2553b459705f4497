"""OpenAI-compatible chat, plain and streamed, against the loopback fake (every preset)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from providers.adapters.openai_compat import ADAPTER_CLASSES, OpenAICompatAdapter
from providers.base import CallContext
from providers.config import ProviderConfig
from providers.errors import ErrorKind, ProviderError
from providers.kinds import KINDS as KIND_TABLE
from providers.types import Category, ChatMessage, GenerationRequest, ImagePart, StreamChunk, Usage
from tests.fakes.openai import FakeOpenAI, openai_error, openrouter_error

CTX = CallContext(timeout_s=5.0)
KINDS = ["openai", "openrouter", "xai", "aimlapi", "poe", "groq", "deepseek"]


@pytest.fixture(params=KINDS)
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(request.param) as server:
        yield server


def adapter(fake: FakeOpenAI, http: httpx.AsyncClient, key: str = "test-key", **extra: object) -> OpenAICompatAdapter:
    kind = fake.dialect
    config = ProviderConfig(name=f"my-{kind}", kind=kind, base_url=fake.url, api_key=key,
                            api_key_env=f"{kind.upper()}_API_KEY", models={Category.TEXT: "m"}, **extra)  # type: ignore[arg-type]
    return ADAPTER_CLASSES[kind](config, http)


def chat(prompt: str = "hello there", **kw: object) -> GenerationRequest:
    return GenerationRequest(Category.TEXT, prompt=prompt, **kw)  # type: ignore[arg-type]


async def collect(stream: AsyncIterator[StreamChunk]) -> tuple[str, list[StreamChunk]]:
    chunks = [c async for c in stream]
    return "".join(c.text for c in chunks), chunks


def test_every_preset_has_its_class_kind_and_default_base_url() -> None:
    assert set(ADAPTER_CLASSES) == set(KINDS)
    assert {k: KIND_TABLE[k].base_url for k in KINDS} == {
        "openai": "https://api.openai.com/v1", "openrouter": "https://openrouter.ai/api/v1",
        "xai": "https://api.x.ai/v1", "aimlapi": "https://api.aimlapi.com/v1", "poe": "https://api.poe.com/v1",
        "groq": "https://api.groq.com/openai/v1", "deepseek": "https://api.deepseek.com"}
    for kind, cls in ADAPTER_CLASSES.items():
        assert cls.kind == kind and cls.categories == KIND_TABLE[kind].categories and cls.streams_text
        assert cls.default_base_url == KIND_TABLE[kind].base_url
    assert ADAPTER_CLASSES["openai"].categories == {Category.TEXT, Category.IMAGE, Category.IMAGE_EDIT,
                                                    Category.AUDIO, Category.TRANSCRIPTION}
    assert ADAPTER_CLASSES["groq"].categories == {Category.TEXT, Category.TRANSCRIPTION}
    assert {k for k, cls in ADAPTER_CLASSES.items() if cls.vision} == set(KINDS) - {"deepseek"}
    empty = ProviderConfig(name="x", kind="xai", base_url="", api_key="k", api_key_env="XAI_API_KEY")
    assert ADAPTER_CLASSES["xai"](empty, httpx.AsyncClient()).url("chat/completions") == \
        "https://api.x.ai/v1/chat/completions"


async def test_plain_chat_sends_the_documented_request(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    request = chat(messages=(ChatMessage("user", "hi"), ChatMessage("assistant", "yo"), ChatMessage("user", "so?")),
                   system="be brief", max_tokens=50)
    result = await adapter(fake, http).generate(request, "some-model", CTX)
    [call] = fake.calls
    assert (call.method, call.path) == ("POST", "/chat/completions")
    assert call.headers["Authorization"] == "Bearer test-key"
    assert call.headers["Content-Type"] == "application/json"
    assert call.json == {"model": "some-model", "max_tokens": 50, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"}, {"role": "user", "content": "so?"}]}
    assert result.text == fake.reply_text and result.model == "some-model"
    assert result.usage == Usage(input_tokens=5 + 3, output_tokens=len(fake.reply_text.split()))
    assert result.cost_micros == (123 if fake.dialect == "openrouter" else None)


async def test_an_image_goes_as_an_image_url_part_with_a_data_uri(http: httpx.AsyncClient) -> None:
    photo = ImagePart("image/jpeg", b"\xff\xd8\xff\xe0 a photo", ref="tg-file-1")
    request = chat(messages=(ChatMessage("user", "what is this?", (photo,)), ChatMessage("assistant", "A cat."),
                             ChatMessage("user", "what colour?")))
    async with FakeOpenAI("openrouter") as fake:  # the fake refuses parts the real API refuses
        text, _ = await collect(adapter(fake, http).stream_text(request, "m", CTX))
    assert text == fake.reply_text
    first, second, third = fake.calls[0].json["messages"]
    assert first == {"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4CBhIHBob3Rv"}}]}
    assert second["content"] == "A cat." and third["content"] == "what colour?"
    assert "tg-file-1" not in fake.calls[0].body.decode()  # the caller's reference never leaves


async def test_a_service_that_cannot_see_is_not_asked_to(http: httpx.AsyncClient) -> None:
    request = chat(messages=(ChatMessage("user", "?", (ImagePart("image/png", b"x"),)),))
    async with FakeOpenAI("deepseek") as fake:
        assert adapter(fake, http).supports(request, "m").reason == "cannot see images"
        assert adapter(fake, http, options={"vision": True}).supports(request, "m")  # a proxy that can
        assert adapter(fake, http).supports(chat(), "m")


async def test_plain_prompt_without_system_or_max_tokens(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        await adapter(fake, http).generate(chat("just this"), "m", CTX)
    assert fake.calls[0].json == {"model": "m", "messages": [{"role": "user", "content": "just this"}]}


async def test_preset_and_configured_headers_are_sent(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI("openrouter") as fake:
        a = adapter(fake, http, headers={"HTTP-Referer": "https://example.org", "OpenAI-Project": "p1"})
        await a.generate(chat(), "m", CTX)
    headers = fake.calls[0].headers
    assert headers["X-Title"] == headers["X-OpenRouter-Title"] == "AI Telegram Bot"
    assert headers["HTTP-Referer"] == "https://example.org" and headers["OpenAI-Project"] == "p1"


async def test_streaming_yields_deltas_then_real_usage(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    fake.stream_keepalive = fake.dialect == "openrouter"
    text, chunks = await collect(adapter(fake, http).stream_text(chat(system="s"), "m", CTX))
    body = fake.calls[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert text == fake.reply_text
    assert [c.text for c in chunks[:-1]] == ["Hello", " from", " the", " fake", " model"]
    last = chunks[-1]
    assert last.text == "" and last.model == "m"
    assert last.usage == Usage(input_tokens=2 + 1 + 3, output_tokens=5)
    assert last.cost_micros == (123 if fake.dialect == "openrouter" else None)


@pytest.mark.parametrize("line_end", ["\r\n", "\n"])
async def test_streaming_with_keepalives_and_crlf(http: httpx.AsyncClient, line_end: str) -> None:
    async with FakeOpenAI("openrouter") as fake:
        fake.stream_keepalive, fake.stream_line_end = True, line_end
        fake.reply_text = "line one\u2028still one"
        text, chunks = await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
    assert text == "line one\u2028still one" and chunks[-1].usage is not None


async def test_stream_without_usage_ends_with_usage_none(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI("deepseek") as fake:
        fake.stream_usage = False
        text, chunks = await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
    assert text == fake.reply_text and chunks[-1].usage is None and chunks[-1].model == "m"


@pytest.mark.parametrize(("dialect", "body", "kind", "status"), [
    ("openai", None, ErrorKind.UNAVAILABLE, None),
    ("openrouter", None, ErrorKind.UNAVAILABLE, 502),
    ("openrouter", {"error": {"code": 429, "message": "Rate limit exceeded upstream"}}, ErrorKind.RATE_LIMITED, 429),
    ("groq", openai_error("Rate limit reached", "tokens", "rate_limit_exceeded"), ErrorKind.RATE_LIMITED, None),
])
async def test_mid_stream_error_event_raises_its_kind(http: httpx.AsyncClient, dialect: str,
                                                      body: dict[str, object] | None, kind: ErrorKind,
                                                      status: int | None) -> None:
    async with FakeOpenAI(dialect) as fake:  # type: ignore[arg-type]
        fake.stream_error_after, fake.stream_error_body = 2, body
        seen: list[str] = []
        with pytest.raises(ProviderError) as caught:
            async for chunk in adapter(fake, http).stream_text(chat(), "m", CTX):
                seen.append(chunk.text)
    assert "".join(seen) == "Hello from"  # what came before the error was handed over
    assert caught.value.kind is kind and caught.value.status == status and caught.value.provider == f"my-{dialect}"


async def test_cut_stream_raises_unavailable_after_the_text_so_far(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        fake.stream_cut_after = 3
        seen: list[str] = []
        with pytest.raises(ProviderError) as caught:
            async for chunk in adapter(fake, http).stream_text(chat(), "m", CTX):
                seen.append(chunk.text)
    assert "".join(seen) == "Hello from the" and caught.value.kind is ErrorKind.UNAVAILABLE


async def test_consumer_stopping_early_closes_the_stream(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        stream = adapter(fake, http).stream_text(chat(), "m", CTX)
        first = await anext(stream)
        await stream.aclose()  # type: ignore[attr-defined]
        assert first.text == "Hello"
        # the pool got its connection back: the next call works on the same client
        assert (await adapter(fake, http).generate(chat(), "m", CTX)).text == fake.reply_text


async def test_refusals_and_content_filter_are_content_policy(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        fake.refusal = "I can't help with that."
        with pytest.raises(ProviderError) as plain:
            await adapter(fake, http).generate(chat(), "m", CTX)
        with pytest.raises(ProviderError) as streamed:
            await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
        fake.refusal, fake.reply_text, fake.finish_reason = None, "", "content_filter"
        with pytest.raises(ProviderError) as filtered:
            await adapter(fake, http).generate(chat(), "m", CTX)
        with pytest.raises(ProviderError) as filtered_stream:
            await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
    for caught in (plain, streamed, filtered, filtered_stream):
        assert caught.value.kind is ErrorKind.CONTENT_POLICY


async def test_error_object_in_a_200_answer_is_classified(http: httpx.AsyncClient) -> None:
    body = openrouter_error(402, "Insufficient credits", {"limit_source": "openrouter_credits"})
    async with FakeOpenAI("openrouter") as fake:
        fake.fail_next(200, body)
        with pytest.raises(ProviderError) as plain:
            await adapter(fake, http).generate(chat(), "m", CTX)
        fake.fail_next(200, body)  # JSON instead of an event stream: same answer
        with pytest.raises(ProviderError) as streamed:
            await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
    for caught in (plain, streamed):
        assert (caught.value.kind, caught.value.status) == (ErrorKind.QUOTA_EXHAUSTED, 402)


@pytest.mark.parametrize("body", [
    "<html>oops</html>", [1, 2], {"choices": []}, {"choices": [{"message": {"content": None}}]},
    {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "7"}},
    {"choices": [{"message": {"content": "x"}}], "usage": [1]},
])
async def test_bodies_not_in_the_promised_shape_are_invalid_response(http: httpx.AsyncClient, body: object) -> None:
    async with FakeOpenAI() as fake:
        fake.fail_next(200, body)
        with pytest.raises(ProviderError) as caught:
            await adapter(fake, http).generate(chat(), "m", CTX)
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


async def test_garbage_200_is_invalid_response_plain_and_streamed(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI("aimlapi") as fake:
        fake.garbage = True
        for call in (adapter(fake, http).generate(chat(), "m", CTX),
                     collect(adapter(fake, http).stream_text(chat(), "m", CTX))):
            with pytest.raises(ProviderError) as caught:
                await call
            assert caught.value.kind is ErrorKind.INVALID_RESPONSE


async def test_non_json_stream_event_is_invalid_response(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        fake.fail_next(200, "data: {not json\n\n", headers={"Content-Type": "text/event-stream"})
        with pytest.raises(ProviderError) as caught:
            await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
    assert caught.value.kind is ErrorKind.INVALID_RESPONSE


async def test_a_stream_answered_as_plain_json_still_works(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        fake.fail_next(200, {"model": "real-m", "choices": [{"message": {"content": "whole"}}],
                             "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
        text, chunks = await collect(adapter(fake, http).stream_text(chat(), "m", CTX))
    assert text == "whole" and chunks[-1].usage == Usage(2, 1) and chunks[-1].model == "real-m"


async def test_hang_is_unavailable_within_the_call_timeout(http: httpx.AsyncClient) -> None:
    short = CallContext(timeout_s=0.2)
    async with FakeOpenAI() as fake:
        fake.hang = True
        with pytest.raises(ProviderError) as plain:
            await adapter(fake, http).generate(chat(), "m", short)
        with pytest.raises(ProviderError) as streamed:
            await collect(adapter(fake, http).stream_text(chat(), "m", short))
    assert plain.value.kind is streamed.value.kind is ErrorKind.UNAVAILABLE
    assert "timed out" in plain.value.message


async def test_wrong_key_is_auth_for_every_dialect_and_never_echoed(fake: FakeOpenAI, http: httpx.AsyncClient) -> None:
    a = adapter(fake, http, key="sk-wrong-secret-key")
    for call in (a.generate(chat(), "m", CTX), collect(a.stream_text(chat(), "m", CTX))):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.kind is ErrorKind.AUTH
        assert "wrong-secret" not in str(caught.value) and "wr***ey" not in str(caught.value)


async def test_connection_refused_is_unavailable(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI() as fake:
        a = adapter(fake, http)
    with pytest.raises(ProviderError) as caught:  # the fake is stopped now
        await a.generate(chat(), "m", CTX)
    assert caught.value.kind is ErrorKind.UNAVAILABLE


async def test_category_not_served_by_the_preset_is_bad_request(http: httpx.AsyncClient) -> None:
    async with FakeOpenAI("groq") as fake:
        with pytest.raises(ProviderError) as caught:
            await adapter(fake, http).generate(GenerationRequest(Category.IMAGE, prompt="cat"), "m", CTX)
    assert caught.value.kind is ErrorKind.BAD_REQUEST and fake.calls == []
