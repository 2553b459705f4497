"""Time and size bounds through the manager: first-token and total deadlines of a stream, the media cap the
manager is given, and the providers-file keys that set the deadlines (providers.streaming, providers.loader).

The deadlines here are tenths of a second against a fake that would take 2 s to finish; each test asserts
what happened (who served, which error, what the fake finished), never how long it took.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator

import pytest

from providers.config import ProvidersConfig
from providers.errors import AllProvidersFailed, ErrorKind, ProviderError
from providers.loader import parse_providers
from providers.loader_checks import ProvidersFileError
from providers.manager import ProviderManager
from providers.types import Category, GenerationRequest
from tests.fakes.openai import FakeOpenAI
from tests.fakes.unruly import UnrulyProvider

CHAT = GenerationRequest(Category.TEXT, prompt="hi")


def config(primary: str, backup: str, *, first: float = 0.3, total: float = 1.0) -> ProvidersConfig:
    text = f"""
    [providers.openai]
    kind = "openai"
    timeout_s = 5
    total_timeout_s = {total}
    first_token_timeout_s = {first}
    models = {{ text = "m", audio = "tts" }}

    [providers.groq]
    kind = "groq"
    timeout_s = 5
    models = {{ text = "llama" }}

    [routes]
    text = ["openai", "groq"]
    audio = ["openai"]

    [manager]
    quick_retry_delay_s = 0
    """
    env = {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": primary, "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": backup}
    return parse_providers(tomllib.loads(text.replace("\n    ", "\n")), "test.toml", env)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[UnrulyProvider, FakeOpenAI]]:
    async with UnrulyProvider() as unruly, FakeOpenAI("groq") as backup:
        yield unruly, backup


async def test_a_stream_of_keep_alives_without_text_falls_back_at_the_first_token_deadline(
        fakes: tuple[UnrulyProvider, FakeOpenAI]) -> None:
    unruly, backup = fakes
    async with ProviderManager(config(f"{unruly.url}/keepalive", backup.url)) as manager:
        stream = manager.stream_text(CHAT)
        text = "".join([delta async for delta in stream])
    assert stream.result is not None and stream.result.provider == "groq" and text == backup.reply_text
    first = stream.result.attempts[0]
    assert (first.provider, first.kind) == ("openai", ErrorKind.UNAVAILABLE)
    assert "no text within 0.3s" in first.message
    assert not unruly.finished["keepalive"]  # the keep-alives never reached their token


async def test_a_stream_trickling_tokens_past_the_total_deadline_raises_after_text_was_shown(
        fakes: tuple[UnrulyProvider, FakeOpenAI]) -> None:
    unruly, backup = fakes
    shown: list[str] = []
    async with ProviderManager(config(f"{unruly.url}/slow-tokens", backup.url, first=0.3, total=0.4)) as manager:
        stream = manager.stream_text(CHAT)
        with pytest.raises(ProviderError) as info:
            async for delta in stream:
                shown.append(delta)
    assert shown and shown[0] == "t0 "  # the first token came in time; the stream as a whole did not end
    assert info.value.kind is ErrorKind.UNAVAILABLE and "still running after 0.4s" in info.value.message
    assert info.value.provider == "openai"
    assert not backup.calls and not unruly.finished["slow-tokens"]  # no switching once text was shown
    assert stream.result is None


async def test_a_stream_that_ends_within_its_deadlines_is_served(fakes: tuple[UnrulyProvider, FakeOpenAI]) -> None:
    _, backup = fakes
    async with UnrulyProvider(gap_s=0.0, steps=3) as quick, \
            ProviderManager(config(f"{quick.url}/slow-tokens", backup.url)) as manager:
        stream = manager.stream_text(CHAT)
        assert "".join([d async for d in stream]) == "t0 t1 t2 "
    assert stream.result is not None and stream.result.provider == "openai"


async def test_the_manager_caps_a_media_body_at_the_media_cap_it_was_given(
        fakes: tuple[UnrulyProvider, FakeOpenAI]) -> None:
    unruly, backup = fakes
    cap = 1 << 20
    manager = ProviderManager(config(f"{unruly.url}/flood-audio", backup.url), max_media_bytes=cap)
    async with manager:
        with pytest.raises(AllProvidersFailed) as info:
            await manager.generate(GenerationRequest(Category.AUDIO, prompt="say it"))
    attempt = info.value.attempts[0]
    assert attempt.kind is ErrorKind.INVALID_RESPONSE and f"more than {cap} bytes" in attempt.message
    assert unruly.sent["flood-audio"] < 64 << 20  # of the 300 MB offered


# --- the providers file ---------------------------------------------------------------------------

def provider(extra: str) -> ProvidersConfig:
    text = f'[providers.openai]\nkind = "openai"\ntimeout_s = 10\nmodels = {{ text = "m" }}\n{extra}\n'
    return parse_providers(tomllib.loads(text), "test.toml", {"OPENAI_API_KEY": "k"})


def test_the_deadlines_default_from_timeout_s() -> None:
    openai = provider("").providers["openai"]
    assert (openai.total_deadline_s, openai.first_token_deadline_s) == (40.0, 10.0)
    short = provider("total_timeout_s = 5").providers["openai"]
    assert (short.total_deadline_s, short.first_token_deadline_s) == (5.0, 5.0)  # never past the total
    set_ = provider("total_timeout_s = 90\nfirst_token_timeout_s = 20").providers["openai"]
    assert (set_.total_deadline_s, set_.first_token_deadline_s) == (90.0, 20.0)


@pytest.mark.parametrize(("extra", "problem"), [
    ("total_timeout_s = 0", "'total_timeout_s' must be greater than 0"),
    ("first_token_timeout_s = -1", "'first_token_timeout_s' must be greater than 0"),
    ('total_timeout_s = "long"', "'total_timeout_s' must be a number"),
    ("total_timeout_s = 5\nfirst_token_timeout_s = 6", "must not exceed 'total_timeout_s'"),
    ("total_timeout = 5", "unknown key 'total_timeout'"),
])
def test_the_deadline_keys_are_checked_strictly(extra: str, problem: str) -> None:
    with pytest.raises(ProvidersFileError, match=problem):
        provider(extra)
