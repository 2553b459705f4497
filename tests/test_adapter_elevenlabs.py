"""ElevenLabsAdapter against the loopback FakeElevenLabs: request shape, audio answers, both error forms."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.adapters.elevenlabs import DEFAULT_VOICE_ID, ElevenLabsAdapter
from providers.errors import ErrorKind
from providers.types import Category, GenerationRequest
from tests.adapter_support import adapter_config, answer, failure, fake_fixture
from tests.adapter_support import call_context as ctx
from tests.fakes.elevenlabs import MP3_BYTES, FakeElevenLabs, error_new, error_old, validation_error

MODEL = "eleven_multilingual_v2"


def make_adapter(base_url: str, http: httpx.AsyncClient, key: str = "xi-test-key",
                 **options: Any) -> ElevenLabsAdapter:
    config = adapter_config("elevenlabs", base_url, key, "ELEVENLABS_API_KEY", {Category.AUDIO: MODEL}, options)
    return ElevenLabsAdapter(config, http)


fake = fake_fixture(FakeElevenLabs)


def speech(text: str = "Hello there", **options: Any) -> GenerationRequest:
    return GenerationRequest(Category.AUDIO, prompt=text, options=options)


# --- requests and answers ------------------------------------------------------------------------

async def test_request_shape_and_audio_answer(fake: FakeElevenLabs, http: httpx.AsyncClient) -> None:
    result = await make_adapter(fake.url, http).generate(speech(), MODEL, ctx())

    (call,) = fake.calls
    assert (call.method, call.path) == ("POST", f"/v1/text-to-speech/{DEFAULT_VOICE_ID}")
    assert call.query == {"output_format": "mp3_44100_128"}
    assert call.headers["xi-api-key"] == "xi-test-key" and "Authorization" not in call.headers
    assert call.headers["Content-Type"] == "application/json"
    assert call.json == {"text": "Hello there", "model_id": MODEL}
    (media,) = result.media
    assert (media.mime, media.data) == ("audio/mpeg", MP3_BYTES)
    assert result.usage.characters == len("Hello there") and result.model == MODEL


@pytest.mark.parametrize(("request_options", "config_options", "voice"), [
    ({"voice_id": "voice-b"}, {"voice_id": "other"}, "voice-b"),
    ({}, {"voice_id": "voice-b"}, "voice-b"),
    ({}, {}, DEFAULT_VOICE_ID),
])
async def test_voice_comes_from_request_then_config_then_default(
        fake: FakeElevenLabs, http: httpx.AsyncClient, request_options: dict[str, str],
        config_options: dict[str, str], voice: str) -> None:
    await make_adapter(fake.url, http, **config_options).generate(speech(**request_options), MODEL, ctx())
    assert fake.calls[0].path == f"/v1/text-to-speech/{voice}"


async def test_voice_settings_and_output_format_are_sent(fake: FakeElevenLabs, http: httpx.AsyncClient) -> None:
    settings = {"stability": 0.4, "similarity_boost": 0.8}
    adapter = make_adapter(fake.url, http, output_format="mp3_22050_32")
    await adapter.generate(speech(voice_settings=settings), MODEL, ctx())
    assert fake.calls[0].json["voice_settings"] == settings
    assert fake.calls[0].query["output_format"] == "mp3_22050_32"


@pytest.mark.parametrize("text", ["a", "Привет, мир", "emoji 🎉 ok", "x" * 4999])
async def test_usage_counts_the_characters_of_the_text(fake: FakeElevenLabs, http: httpx.AsyncClient,
                                                       text: str) -> None:
    result = await make_adapter(fake.url, http).generate(speech(text), MODEL, ctx())
    assert result.usage.characters == len(text) == len(fake.calls[0].json["text"])


@pytest.mark.parametrize("request_", [speech("   "), GenerationRequest(Category.IMAGE, prompt="a cat")])
async def test_unusable_requests_fail_without_a_call(fake: FakeElevenLabs, http: httpx.AsyncClient,
                                                     request_: GenerationRequest) -> None:
    err = await failure(make_adapter(fake.url, http).generate(request_, MODEL, ctx()))
    assert err.kind is ErrorKind.BAD_REQUEST and fake.calls == []


# --- errors from the fake's own behaviour ----------------------------------------------------------

@pytest.mark.parametrize("old_form", [False, True])
async def test_real_failures_of_the_fake(fake: FakeElevenLabs, http: httpx.AsyncClient, old_form: bool) -> None:
    fake.old_errors = old_form
    adapter = make_adapter(fake.url, http)
    wrong_key = await failure(make_adapter(fake.url, http, key="xi-wrong").generate(speech(), MODEL, ctx()))
    assert wrong_key.kind is ErrorKind.AUTH and "xi-wrong" not in str(wrong_key)
    voice = await failure(adapter.generate(speech(voice_id="nope"), MODEL, ctx()))
    assert voice.kind is ErrorKind.BAD_REQUEST and "voice_not_found" in voice.message
    fake.character_limit = 5
    too_long = await failure(adapter.generate(speech("too long"), MODEL, ctx()))
    assert too_long.kind is ErrorKind.BAD_REQUEST and "max_character_limit_exceeded" in too_long.message


@pytest.mark.parametrize("old_form", [False, True])
async def test_spent_quota_on_401_is_quota_not_auth(fake: FakeElevenLabs, http: httpx.AsyncClient,
                                                    old_form: bool) -> None:
    fake.old_errors, fake.quota_chars = old_form, 12
    adapter = make_adapter(fake.url, http)
    await adapter.generate(speech("ten chars."), MODEL, ctx())
    err = await failure(adapter.generate(speech("ten chars."), MODEL, ctx()))
    assert (err.kind, err.status) == (ErrorKind.QUOTA_EXHAUSTED, 401)


# --- every error shape -> kind -----------------------------------------------------------------------

_CODES = [
    (401, "invalid_api_key", ErrorKind.AUTH),
    (401, "quota_exceeded", ErrorKind.QUOTA_EXHAUSTED),  # the trap
    (400, "voice_not_found", ErrorKind.BAD_REQUEST),
    (400, "max_character_limit_exceeded", ErrorKind.BAD_REQUEST),
    (429, "rate_limit_exceeded", ErrorKind.RATE_LIMITED),
    (429, "concurrent_limit_exceeded", ErrorKind.RATE_LIMITED),
    (429, "too_many_concurrent_requests", ErrorKind.RATE_LIMITED),
    (429, "system_busy", ErrorKind.RATE_LIMITED),  # load spike: cooldown, not a circuit-breaker failure
    (500, "internal_error", ErrorKind.UNAVAILABLE),
    (503, "service_unavailable", ErrorKind.UNAVAILABLE),
]
ERROR_CASES = (
    [(status, error_new(code, f"{code} happened"), kind) for status, code, kind in _CODES]
    + [(status, error_old(code, f"{code} happened"), kind) for status, code, kind in _CODES]
    + [(422, validation_error("text"), ErrorKind.BAD_REQUEST),
       (502, "<html>Bad Gateway</html>", ErrorKind.UNAVAILABLE),
       (401, {"detail": "Unauthorized"}, ErrorKind.AUTH)]
)


@pytest.mark.parametrize(("status", "payload", "kind"), ERROR_CASES)
async def test_error_shapes_map_to_kinds(fake: FakeElevenLabs, http: httpx.AsyncClient, status: int,
                                         payload: Any, kind: ErrorKind) -> None:
    fake.fail_next(status, payload)
    err = await failure(make_adapter(fake.url, http).generate(speech(), MODEL, ctx()))
    assert (err.kind, err.status, err.provider) == (kind, status, "elevenlabs")


async def test_retry_after_is_kept(fake: FakeElevenLabs, http: httpx.AsyncClient) -> None:
    fake.fail_next(429, error_new("concurrent_limit_exceeded", "Too many concurrent requests"), {"Retry-After": "3"})
    err = await failure(make_adapter(fake.url, http).generate(speech(), MODEL, ctx()))
    assert (err.kind, err.retry_after_s) == (ErrorKind.RATE_LIMITED, 3.0)


@pytest.mark.parametrize(("payload", "headers"), [
    ({"audio_base64": "SUQz"}, {}),  # JSON instead of audio
    (b"", {"Content-Type": "audio/mpeg"}),
    (b"<html>maintenance</html>", {"Content-Type": "text/html"}),
    (b"not an mp3 at all", {"Content-Type": "audio/mpeg"}),
    (b'{"detail": "x"}', {"Content-Type": "application/octet-stream"}),
])
async def test_garbage_bodies_are_invalid_response(fake: FakeElevenLabs, http: httpx.AsyncClient,
                                                   payload: Any, headers: dict[str, str]) -> None:
    fake.fail_next(200, payload, headers)
    err = await failure(make_adapter(fake.url, http).generate(speech(), MODEL, ctx()))
    assert err.kind is ErrorKind.INVALID_RESPONSE


async def test_hanging_server_is_unavailable(fake: FakeElevenLabs, http: httpx.AsyncClient) -> None:
    fake.hang = True
    err = await failure(make_adapter(fake.url, http).generate(speech(), MODEL, ctx(timeout_s=0.2)))
    assert err.kind is ErrorKind.UNAVAILABLE


# --- general rules -----------------------------------------------------------------------------------

OFFLINE = make_adapter("http://elevenlabs.test", httpx.AsyncClient())  # only its error() is used


def synthetic(status: int, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return answer(status, payload, "http://elevenlabs.test/x", headers)


@given(st.integers(400, 499), st.text(max_size=60), st.booleans())
def test_quota_exceeded_is_quota_whatever_the_status_or_form(status: int, message: str, old: bool) -> None:
    payload = error_old("quota_exceeded", message) if old else error_new("quota_exceeded", message)
    assert OFFLINE.error(synthetic(status, payload)).kind is ErrorKind.QUOTA_EXHAUSTED


@given(st.sampled_from(["rate_limit_exceeded", "concurrent_limit_exceeded", "too_many_concurrent_requests",
                        "system_busy"]), st.booleans(), st.floats(0, 3600, allow_nan=False))
def test_rate_codes_keep_the_retry_after(code: str, old: bool, wait: float) -> None:
    payload = error_old(code, "slow down") if old else error_new(code, "slow down")
    err = OFFLINE.error(synthetic(429, payload, {"retry-after": repr(wait)}))
    assert err.kind is ErrorKind.RATE_LIMITED and err.retry_after_s == pytest.approx(wait)
