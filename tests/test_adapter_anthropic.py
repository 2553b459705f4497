"""Anthropic Messages, plain and streamed, and every documented error, against the loopback fake."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.adapters.anthropic import AnthropicAdapter, alternate
from providers.base import CallContext
from providers.config import ProviderConfig
from providers.errors import ErrorKind, ProviderError
from providers.types import Category, ChatMessage, GenerationRequest, ImagePart, StreamChunk, Usage
from tests.adapter_support import fake_fixture
from tests.fakes.anthropic import FakeAnthropic, anthropic_error

E = ErrorKind
CTX = CallContext(timeout_s=5.0)
U, A, S = "user", "assistant", "system"


fake = fake_fixture(FakeAnthropic)


def make(url: str, http: httpx.AsyncClient, key: str = "test-key", **options: Any) -> AnthropicAdapter:
    config = ProviderConfig(name="claude", kind="anthropic", base_url=url, api_key=key,
                            api_key_env="ANTHROPIC_API_KEY", options=options)
    return AnthropicAdapter(config, http)


def chat(*turns: tuple[str, str], prompt: str = "hello there", **kw: Any) -> GenerationRequest:
    return GenerationRequest(Category.TEXT, prompt=prompt, messages=tuple(ChatMessage(r, c) for r, c in turns), **kw)


async def collect(stream: AsyncIterator[StreamChunk]) -> tuple[str, list[StreamChunk]]:
    chunks = [c async for c in stream]
    return "".join(c.text for c in chunks), chunks


async def test_plain_message_request_and_answer(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    result = await make(fake.url, http).generate(chat(system="be brief"), "claude-x", CTX)
    [call] = fake.calls
    assert (call.method, call.path) == ("POST", "/v1/messages")
    assert call.headers["x-api-key"] == "test-key" and call.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in call.headers
    assert call.json == {"model": "claude-x", "max_tokens": 1024, "system": "be brief",
                         "messages": [{"role": "user", "content": "hello there"}]}
    assert result.text == fake.reply_text and result.model == "claude-x"
    assert result.usage == Usage(input_tokens=2 + 2 + 5, output_tokens=5) and result.cost_micros is None


async def test_history_is_made_to_alternate_starting_with_the_user(fake: FakeAnthropic,
                                                                   http: httpx.AsyncClient) -> None:
    request = chat((A, "earlier answer"), (U, "one"), (U, "two"), (S, "house rules"), (A, "reply"), (A, "more"),
                   (U, ""), (U, "three"), max_tokens=77)
    await make(fake.url, http).generate(request, "m", CTX)  # the fake rejects what the real API rejects
    assert fake.calls[0].json["messages"] == [
        {"role": U, "content": "one\n\ntwo"}, {"role": A, "content": "reply\n\nmore"}, {"role": U, "content": "three"}]
    assert fake.calls[0].json["system"] == "house rules" and fake.calls[0].json["max_tokens"] == 77


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from([U, A, S]), st.text(max_size=5)), max_size=12))
def test_alternate_always_gives_what_anthropic_accepts(turns: list[tuple[str, str]]) -> None:
    out, systems = alternate(tuple(ChatMessage(r, c) for r, c in turns))
    assert all(m["content"].strip() for m in out)
    assert [m["role"] for m in out] == [U if i % 2 == 0 else A for i in range(len(out))]
    assert systems == [c for r, c in turns if r == S]
    kept: list[str] = []  # what must survive: everything from the first real user turn on
    for role, content in turns:
        if role != S and content.strip() and (kept or role == U):
            kept.append(content)
    assert "\n\n".join(m["content"] for m in out) == "\n\n".join(kept)


async def test_an_image_goes_as_a_base64_image_block_before_the_text(fake: FakeAnthropic,
                                                                     http: httpx.AsyncClient) -> None:
    jpeg = b"\xff\xd8\xff\xe0 a photo"
    request = GenerationRequest(Category.TEXT, messages=(
        ChatMessage(U, "what is this?", (ImagePart("image/jpeg", jpeg, ref="tg-file-1"),)),
        ChatMessage(A, "A cat."), ChatMessage(U, "what colour is it?")))
    result = await collect(make(fake.url, http).stream_text(request, "claude-x", CTX))
    assert result[0] == fake.reply_text  # the fake refuses what the real API refuses
    first, second, third = fake.calls[0].json["messages"]
    assert first == {"role": U, "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4CBhIHBob3Rv"}},
        {"type": "text", "text": "what is this?"}]}
    assert second == {"role": A, "content": "A cat."} and third == {"role": U, "content": "what colour is it?"}
    assert "tg-file-1" not in fake.calls[0].body.decode()  # the caller's reference never leaves


def test_images_merge_with_a_neighbouring_user_turn_and_unfetched_ones_stay_home() -> None:
    png = ImagePart("image/png", b"\x89PNG")
    turns, _ = alternate((ChatMessage(U, "", (png,)), ChatMessage(U, "and this?", (ImagePart("image/png"),)),
                          ChatMessage(A, "ignored images", (png,))))
    assert [t["role"] for t in turns] == [U, A] and turns[1]["content"] == "ignored images"
    assert [b["type"] for b in turns[0]["content"]] == ["image", "text"]


def test_anthropic_sees_images() -> None:
    adapter = make("http://127.0.0.1:9", httpx.AsyncClient())
    seeing = GenerationRequest(Category.TEXT, messages=(ChatMessage(U, "?", (ImagePart("image/png", b"x"),)),))
    assert adapter.supports(seeing, "claude-x")
    blind = make("http://127.0.0.1:9", httpx.AsyncClient(), vision=False)  # a proxy to a model that cannot
    assert blind.supports(seeing, "m").reason == "cannot see images" and blind.supports(chat(), "m")


async def test_only_assistant_turns_is_bad_request_without_a_call(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await make(fake.url, http).generate(chat((A, "hi")), "m", CTX)
    assert caught.value.kind is E.BAD_REQUEST and fake.calls == []


async def test_version_is_overridable(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as caught:  # the fake only speaks 2023-06-01
        await make(fake.url, http, anthropic_version="2099-01-01").generate(chat(), "m", CTX)
    assert fake.calls[0].headers["anthropic-version"] == "2099-01-01" and caught.value.kind is E.BAD_REQUEST


async def test_cache_tokens_count_as_input(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    fake.cache_read_tokens, fake.cache_creation_tokens = 100, 20
    plain = await make(fake.url, http).generate(chat(), "m", CTX)
    _, chunks = await collect(make(fake.url, http).stream_text(chat(), "m", CTX))
    assert plain.usage == chunks[-1].usage == Usage(input_tokens=7 + 120, output_tokens=5)


async def test_streaming_events_with_pings_and_unknown_events(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    text, chunks = await collect(make(fake.url, http).stream_text(chat(system="s"), "claude-x", CTX))
    assert fake.calls[0].json["stream"] is True and fake.calls[0].json["system"] == "s"
    assert text == fake.reply_text and [c.text for c in chunks[:-1]] == ["Hello", " from", " the", " fake", " Claude"]
    assert chunks[-1] == StreamChunk(usage=Usage(input_tokens=2 + 1 + 5, output_tokens=5), model="claude-x")


@pytest.mark.parametrize(("error_type", "kind"), [("overloaded_error", E.UNAVAILABLE), ("api_error", E.UNAVAILABLE),
                                                  ("rate_limit_error", E.RATE_LIMITED)])
async def test_error_event_mid_stream(fake: FakeAnthropic, http: httpx.AsyncClient, error_type: str,
                                      kind: ErrorKind) -> None:
    fake.stream_error_after, fake.stream_error_type = 2, error_type
    seen: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in make(fake.url, http).stream_text(chat(), "m", CTX):
            seen.append(chunk.text)
    assert "".join(seen) == "Hello from" and caught.value.kind is kind


async def test_cut_stream_is_unavailable(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    fake.stream_cut_after = 1
    with pytest.raises(ProviderError) as caught:
        await collect(make(fake.url, http).stream_text(chat(), "m", CTX))
    assert caught.value.kind is E.UNAVAILABLE


async def test_refusal_is_content_policy_plain_and_streamed(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    fake.stop_reason = "refusal"
    for call in (make(fake.url, http).generate(chat(), "m", CTX),
                 collect(make(fake.url, http).stream_text(chat(), "m", CTX))):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.kind is E.CONTENT_POLICY


@pytest.mark.parametrize("body", ["<html>oops</html>", {"content": "text"}, {"content": []}, [1],
                                  {"content": [], "usage": {"input_tokens": "9"}}])
async def test_bodies_not_in_the_promised_shape_are_invalid_response(fake: FakeAnthropic, http: httpx.AsyncClient,
                                                                     body: object) -> None:
    fake.fail_next(200, body)
    with pytest.raises(ProviderError) as caught:
        await make(fake.url, http).generate(chat(), "m", CTX)
    assert caught.value.kind is E.INVALID_RESPONSE


async def test_garbage_and_bad_event_json_are_invalid_response(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    fake.garbage = True
    with pytest.raises(ProviderError) as garbage:
        await collect(make(fake.url, http).stream_text(chat(), "m", CTX))
    fake.fail_next(200, "event: message_start\ndata: {nope\n\n", {"Content-Type": "text/event-stream"})
    with pytest.raises(ProviderError) as bad_event:
        await collect(make(fake.url, http).stream_text(chat(), "m", CTX))
    assert garbage.value.kind is bad_event.value.kind is E.INVALID_RESPONSE


async def test_hang_is_unavailable(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    fake.hang = True
    short = CallContext(timeout_s=0.2)
    for call in (make(fake.url, http).generate(chat(), "m", short),
                 collect(make(fake.url, http).stream_text(chat(), "m", short))):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.kind is E.UNAVAILABLE


async def test_wrong_key_is_auth_and_not_echoed(fake: FakeAnthropic, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await make(fake.url, http, key="sk-ant-secret").generate(chat(), "m", CTX)
    assert caught.value.kind is E.AUTH and caught.value.status == 401 and "sk-ant-secret" not in str(caught.value)


CASES: list[tuple[int, Any, dict[str, str], ErrorKind, float | None]] = [
    (400, anthropic_error("invalid_request_error", "messages: field required"), {}, E.BAD_REQUEST, None),
    (400, anthropic_error("invalid_request_error", "Your credit balance is too low to access the Anthropic API. "
                                                   "Please go to Plans & Billing to upgrade or purchase credits."),
     {}, E.QUOTA_EXHAUSTED, None),
    (401, anthropic_error("authentication_error", "invalid x-api-key"), {}, E.AUTH, None),
    (402, anthropic_error("billing_error", "Payment required"), {}, E.QUOTA_EXHAUSTED, None),
    (403, anthropic_error("permission_error", "Your API key does not have permission"), {}, E.AUTH, None),
    (404, anthropic_error("not_found_error", "model: claude-9"), {}, E.BAD_REQUEST, None),
    (413, anthropic_error("request_too_large", "Request exceeds the maximum allowed number of bytes."), {},
     E.BAD_REQUEST, None),
    (429, anthropic_error("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
     {"retry-after": "17", "anthropic-ratelimit-requests-reset": "2026-11-02T10:00:17Z"}, E.RATE_LIMITED, 17.0),
    (500, anthropic_error("api_error", "Internal server error"), {}, E.UNAVAILABLE, None),
    (529, anthropic_error("overloaded_error", "Overloaded"), {}, E.UNAVAILABLE, None),
    (502, "<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"}, E.UNAVAILABLE, None),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry"), CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
async def test_error_is_classified(fake: FakeAnthropic, http: httpx.AsyncClient, status: int, body: Any,
                                   headers: dict[str, str], kind: ErrorKind, retry: float | None) -> None:
    for call in ("plain", "stream"):
        fake.fail_next(status, body, headers)
        with pytest.raises(ProviderError) as caught:
            if call == "plain":
                await make(fake.url, http).generate(chat(), "m", CTX)
            else:
                await collect(make(fake.url, http).stream_text(chat(), "m", CTX))
        error = caught.value
        assert (error.kind, error.status, error.retry_after_s, error.provider) == (kind, status, retry, "claude")
        assert error.message and "<html" not in error.message


_ADAPTER = make("http://127.0.0.1:9", httpx.AsyncClient())  # error() never sends
_TYPES = ["invalid_request_error", "authentication_error", "billing_error", "rate_limit_error", "api_error",
          "overloaded_error", "", "credit balance is too low"]


@settings(max_examples=200, deadline=None)
@given(status=st.integers(500, 599) | st.just(529), err_type=st.sampled_from(_TYPES), message=st.text(max_size=40))
def test_any_server_status_is_unavailable(status: int, err_type: str, message: str) -> None:
    body = json.dumps(anthropic_error(err_type, message))
    assert _ADAPTER.error(httpx.Response(status, content=body.encode())).kind is E.UNAVAILABLE


@settings(max_examples=100, deadline=None)
@given(seconds=st.integers(0, 86_400))
def test_retry_after_round_trips(seconds: int) -> None:
    response = httpx.Response(429, json=anthropic_error("rate_limit_error", "slow down"),
                              headers={"retry-after": str(seconds)})
    assert _ADAPTER.error(response).retry_after_s == float(seconds)
