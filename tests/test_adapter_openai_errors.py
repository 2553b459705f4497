"""Every OpenAI-style error shape of providers-wire.md 1-2, classified through the loopback fake,
plus the general rules as hypothesis properties."""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.adapters.openai_compat import ADAPTER_CLASSES, OpenAICompatAdapter
from providers.base import CallContext
from providers.errors import ErrorKind, ProviderError
from providers.types import Category, GenerationRequest
from tests.adapter_support import adapter_config
from tests.fakes.openai import FakeOpenAI, aimlapi_error, openai_error, openrouter_error, xai_error

E = ErrorKind
CTX = CallContext(timeout_s=5.0)
RATE_MSG = ("Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 3, "
            "Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits "
            "to learn more. You can increase your rate limit by adding a payment method to your account at "
            "https://platform.openai.com/account/billing.")
QUOTA_MSG = "You exceeded your current quota, please check your plan and billing details."
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"

# (dialect, status, body, headers, kind, retry_after_s)
CASES: list[tuple[str, int, Any, dict[str, str], ErrorKind, float | None]] = [
    ("openai", 401, openai_error("Incorrect API key provided: sk-ab***yz.", "invalid_request_error",
                                 "invalid_api_key"), {}, E.AUTH, None),
    ("openai", 429, openai_error(RATE_MSG, "requests", "rate_limit_exceeded"), {}, E.RATE_LIMITED, 20.0),
    ("openai", 429, openai_error("Rate limit reached. Please try again in 250ms.", "tokens", "rate_limit_exceeded"),
     {"retry-after-ms": "1500"}, E.RATE_LIMITED, 1.5),
    ("openai", 429, openai_error(QUOTA_MSG, "insufficient_quota", "insufficient_quota"), {}, E.QUOTA_EXHAUSTED, None),
    ("openai", 429, openai_error(QUOTA_MSG, "insufficient_quota", None), {}, E.QUOTA_EXHAUSTED, None),
    ("openai", 429, {"error": {"message": QUOTA_MSG, "type": "requests", "param": None, "code": None}}, {},
     E.QUOTA_EXHAUSTED, None),
    ("openai", 400, openai_error("Invalid value for 'messages'.", "invalid_request_error", None, "messages"), {},
     E.BAD_REQUEST, None),
    ("openai", 400, openai_error("Your request was rejected as a result of our safety system.",
                                 "image_generation_user_error", "content_policy_violation"), {},
     E.CONTENT_POLICY, None),
    ("openai", 404, openai_error("The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"), {},
     E.BAD_REQUEST, None),
    ("openai", 500, openai_error("The server had an error while processing your request.", "server_error"), {},
     E.UNAVAILABLE, None),
    ("openai", 503, openai_error("The engine is currently overloaded, please try again later.", "server_error"),
     {"retry-after": "3"}, E.UNAVAILABLE, 3.0),
    ("openai", 502, HTML_502, {"Content-Type": "text/html"}, E.UNAVAILABLE, None),
    ("poe", 402, openai_error("You've used up your points! Visit https://poe.com/api/keys to get more.",
                              "insufficient_points"), {}, E.QUOTA_EXHAUSTED, None),
    ("poe", 402, "You've used up your points!", {}, E.QUOTA_EXHAUSTED, None),
    ("poe", 401, openai_error("Invalid API key", "authentication_error", "invalid_api_key"), {}, E.AUTH, None),
    ("poe", 400, openai_error("Model not found", "invalid_request_error", "model_not_found"), {}, E.BAD_REQUEST, None),
    ("poe", 429, openai_error("Rate limit exceeded", "rate_limit_error", "rate_limit_exceeded"),
     {"x-ratelimit-reset-requests": "12", "retry-after": "12"}, E.RATE_LIMITED, 12.0),
    ("groq", 498, openai_error("Capacity exceeded", "capacity_exceeded", "capacity_exceeded"), {}, E.UNAVAILABLE, None),
    ("groq", 413, openai_error("Request too large for model on tokens per minute (TPM): Limit 6000, Requested 9000",
                               "tokens", "rate_limit_exceeded"), {}, E.BAD_REQUEST, None),
    ("groq", 422, openai_error("Unprocessable entity", "invalid_request_error"), {}, E.BAD_REQUEST, None),
    ("groq", 429, openai_error("Rate limit reached. Please try again in 7.5s.", "tokens", "rate_limit_exceeded"),
     {"retry-after": "7"}, E.RATE_LIMITED, 7.0),
    ("deepseek", 402, openai_error("Insufficient Balance", "unknown_error", "invalid_request_error"), {},
     E.QUOTA_EXHAUSTED, None),
    ("deepseek", 503, openai_error("Server overloaded", "server_error"), {}, E.UNAVAILABLE, None),
    ("deepseek", 422, openai_error("Invalid Parameters", "invalid_request_error"), {}, E.BAD_REQUEST, None),
    ("openrouter", 402, openrouter_error(402, "Insufficient credits. Add more using https://openrouter.ai/credits",
                                         {"limit_source": "openrouter_credits"}), {}, E.QUOTA_EXHAUSTED, None),
    ("openrouter", 403, openrouter_error(403, "Input was flagged", {"reasons": ["violence"], "flagged_input": "…",
                                                                   "provider_name": "OpenAI"}), {},
     E.CONTENT_POLICY, None),
    ("openrouter", 403, openrouter_error(403, "Key is disabled"), {}, E.AUTH, None),
    ("openrouter", 401, openrouter_error(401, "No auth credentials found"), {}, E.AUTH, None),
    ("openrouter", 408, openrouter_error(408, "Request timed out"), {}, E.UNAVAILABLE, None),
    ("openrouter", 429, openrouter_error(429, "Rate limit exceeded: free-models-per-min."), {"Retry-After": "4"},
     E.RATE_LIMITED, 4.0),
    ("openrouter", 502, openrouter_error(502, "Provider returned error"), {}, E.UNAVAILABLE, None),
    ("openrouter", 503, openrouter_error(503, "No allowed providers are available for the selected model."),
     {"Retry-After": "9"}, E.UNAVAILABLE, 9.0),
    ("openrouter", 400, openrouter_error(400, "Invalid model"), {}, E.BAD_REQUEST, None),
    ("xai", 400, xai_error("Client specified an invalid argument", "Incorrect API key provided: xa***ey. You can "
                           "obtain an API key from https://console.x.ai."), {}, E.AUTH, None),
    ("xai", 401, xai_error("Unauthenticated", "No API key provided."), {}, E.AUTH, None),
    ("xai", 403, xai_error("The caller does not have permission to execute the specified operation",
                           "Your newly created team doesn't have any credits or licenses yet. You can purchase "
                           "credits on https://console.x.ai/team/abc."), {}, E.QUOTA_EXHAUSTED, None),
    ("xai", 429, xai_error("Too many requests", "Rate limit exceeded"), {}, E.RATE_LIMITED, None),
    ("xai", 400, xai_error("Client specified an invalid argument", "The model grok-9 does not exist."), {},
     E.BAD_REQUEST, None),
    ("aimlapi", 403, aimlapi_error(403, "Forbidden"), {}, E.QUOTA_EXHAUSTED, None),
    ("aimlapi", 401, aimlapi_error(401, "Unauthorized"), {}, E.AUTH, None),
    ("aimlapi", 429, aimlapi_error(429, "Too Many Requests"), {}, E.RATE_LIMITED, None),
    ("aimlapi", 400, aimlapi_error(400, "Invalid payload provided"), {}, E.BAD_REQUEST, None),
]


def make(kind: str, client: httpx.AsyncClient, url: str = "http://127.0.0.1:9", key: str = "test-key"
         ) -> OpenAICompatAdapter:
    config = adapter_config(kind, url, key, "K")
    return ADAPTER_CLASSES[kind](config, client)


@pytest.mark.parametrize(("dialect", "status", "body", "headers", "kind", "retry"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[4]}" for c in CASES])
async def test_error_shape_is_classified(http: httpx.AsyncClient, dialect: str, status: int, body: Any,
                                         headers: dict[str, str], kind: ErrorKind, retry: float | None) -> None:
    async with FakeOpenAI(dialect) as fake:  # type: ignore[arg-type]
        fake.fail_next(status, body, headers)
        with pytest.raises(ProviderError) as caught:
            await make(dialect, http, fake.url).generate(GenerationRequest(Category.TEXT, prompt="hi"), "m", CTX)
    error = caught.value
    assert (error.kind, error.status, error.retry_after_s) == (kind, status, retry)
    assert error.provider == dialect and error.message and "<html" not in error.message


async def test_retry_after_as_http_date(http: httpx.AsyncClient) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    async with FakeOpenAI("openrouter") as fake:
        fake.fail_next(429, openrouter_error(429, "Rate limit exceeded"), {"Retry-After": when})
        with pytest.raises(ProviderError) as caught:
            await make("openrouter", http, fake.url).generate(GenerationRequest(Category.TEXT, prompt="x"), "m", CTX)
    assert caught.value.kind is E.RATE_LIMITED
    assert caught.value.retry_after_s is not None and 100 < caught.value.retry_after_s <= 120


def test_the_key_itself_is_scrubbed_from_messages() -> None:
    body = openai_error("Key sk-live-123456 is not allowed here", "invalid_request_error")
    error = make("openai", httpx.AsyncClient(), key="sk-live-123456").error(httpx.Response(403, json=body))
    assert "sk-live-123456" not in str(error) and error.kind is E.AUTH


# --- properties ---------------------------------------------------------------------------------

DIALECTS = st.sampled_from(sorted(ADAPTER_CLASSES))
_TRAPS = ["insufficient_quota", "Incorrect API key provided", "rate_limit_exceeded", "billing",
          "content_policy_violation", "invalid_api_key", "You've used up your points", "flagged", "capacity_exceeded"]
_words = st.text(st.characters(exclude_categories=["Cs"]), max_size=40) | st.sampled_from(_TRAPS)
_any_body = st.one_of(
    st.builds(lambda m, t, c: json.dumps(openai_error(m, t, c)), _words, _words, st.none() | _words),
    st.builds(lambda c, m: json.dumps(openrouter_error(c, m)), st.integers(100, 599), _words),
    st.builds(lambda c, m: json.dumps(xai_error(c, m)), _words, _words),
    st.builds(lambda s, m: json.dumps(aimlapi_error(s, m)), st.integers(100, 599), _words),
    _words,
    st.just(HTML_502),
)
_ADAPTERS = {kind: make(kind, httpx.AsyncClient()) for kind in ADAPTER_CLASSES}  # error() never sends


@settings(max_examples=300, deadline=None)
@given(dialect=DIALECTS, status=st.integers(500, 599) | st.just(529), body=_any_body)
def test_any_server_status_is_unavailable(dialect: str, status: int, body: str) -> None:
    error = _ADAPTERS[dialect].error(httpx.Response(status, content=body.encode()))
    assert error.kind is E.UNAVAILABLE and error.status == status


@settings(max_examples=300, deadline=None)
@given(dialect=DIALECTS, status=st.sampled_from([400, 429]), where=st.sampled_from(["type", "code", "message"]),
       before=_words, after=_words)
def test_any_body_mentioning_insufficient_quota_is_quota(dialect: str, status: int, where: str,
                                                         before: str, after: str) -> None:
    fields = {"type": "requests", "code": "rate_limit_exceeded", "message": "Rate limit reached"}
    fields[where] = f"{before}insufficient_quota{after}"
    body = openai_error(fields["message"], fields["type"], fields["code"])
    error = _ADAPTERS[dialect].error(httpx.Response(status, json=body))
    assert error.kind is E.QUOTA_EXHAUSTED


@settings(max_examples=200, deadline=None)
@given(dialect=DIALECTS, seconds=st.integers(0, 86_400), form=st.sampled_from(["s", "ms", "words_ms", "words_s"]))
def test_retry_after_round_trips(dialect: str, seconds: int, form: str) -> None:
    message, headers = "Rate limit reached.", {}
    if form == "s":
        headers = {"retry-after": str(seconds)}
    elif form == "ms":
        headers = {"retry-after-ms": str(seconds)}
    else:
        message += f" Please try again in {seconds}{form[6:]}."
    error = _ADAPTERS[dialect].error(httpx.Response(
        429, json=openai_error(message, "requests", "rate_limit_exceeded"), headers=headers))
    assert error.kind is E.RATE_LIMITED
    assert error.retry_after_s == (seconds / 1000 if form.endswith("ms") else float(seconds))
