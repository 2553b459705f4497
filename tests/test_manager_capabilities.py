"""Capabilities, not failures: a provider that cannot serve a request (see an image, do an edit operation,
read an audio format) is skipped by the route, never called; the real adapters over loopback fakes."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.errors import AllProvidersFailed, ErrorKind
from providers.loader import load_providers
from providers.manager import ProviderManager
from providers.types import Category, ChatMessage, EditOp, GenerationRequest, ImagePart
from tests.fakes.openai import PNG_1X1, FakeOpenAI, openai_error
from tests.fakes.stability import FakeStability

FILE = """
[providers.deepseek]
kind = "deepseek"
models = { text = "deepseek-chat" }

[providers.openai]
kind = "openai"
models = { text = "gpt-4o-mini", image_edit = "gpt-image-1", transcription = "gpt-4o-mini-transcribe" }
prices = { transcription_per_minute = 0.006 }

[providers.groq]
kind = "groq"
models = { transcription = "whisper-large-v3-turbo" }

[providers.stability]
kind = "stability"
models = { image_edit = "stable-image-edit" }

[routes]
text = ["deepseek", "openai"]
image_edit = ["stability", "openai"]
transcription = ["groq", "openai"]

[manager]
quick_retry_delay_s = 0
"""

Fakes = tuple[FakeOpenAI, FakeOpenAI, FakeOpenAI, FakeStability]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeOpenAI("deepseek") as deepseek, FakeOpenAI("openai") as openai, FakeOpenAI("groq") as groq, \
            FakeStability() as stability:
        yield deepseek, openai, groq, stability


@pytest.fixture
async def manager(tmp_path: Path, fakes: Fakes) -> AsyncIterator[ProviderManager]:
    path = tmp_path / "providers.toml"
    path.write_text(textwrap.dedent(FILE))
    deepseek, openai, groq, stability = fakes
    env = {"DEEPSEEK_API_KEY": "test-key", "DEEPSEEK_BASE_URL": deepseek.url,
           "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": openai.url,
           "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": groq.url,
           "STABILITY_API_KEY": stability.api_key, "STABILITY_BASE_URL": stability.url}
    async with ProviderManager(load_providers(path, env=env)) as built:
        yield built


def photo_question() -> GenerationRequest:
    image = ImagePart("image/png", PNG_1X1)
    return GenerationRequest(Category.TEXT, messages=(ChatMessage("user", "what is in it?", (image,)),))


async def test_a_chat_with_an_image_skips_the_provider_that_cannot_see(manager: ProviderManager,
                                                                       fakes: Fakes) -> None:
    deepseek, openai, _, _ = fakes
    stream = manager.stream_text(photo_question())
    text = "".join([delta async for delta in stream])
    assert text == openai.reply_text and stream.result is not None and stream.result.provider == "openai"
    assert deepseek.calls == []  # never tried, so never a bad_request that would stop the fallback
    assert [a.provider for a in stream.result.attempts] == ["openai"]
    assert openai.calls[0].json["messages"][0]["content"][1]["type"] == "image_url"
    plain = await manager.generate(GenerationRequest(Category.TEXT, prompt="hi"))
    assert plain.provider == "deepseek"  # without an image it is back in the route


async def test_an_instruction_edit_skips_the_provider_without_that_operation(manager: ProviderManager,
                                                                             fakes: Fakes) -> None:
    _, openai, _, stability = fakes
    instruct = GenerationRequest(Category.IMAGE_EDIT, prompt="make the sky purple", image=PNG_1X1,
                                 edit_op=EditOp.INSTRUCT)
    assert (await manager.generate(instruct)).provider == "openai" and stability.calls == []
    assert openai.calls[0].form["prompt"] == "make the sky purple"
    cutout = GenerationRequest(Category.IMAGE_EDIT, image=PNG_1X1, edit_op=EditOp.REMOVE_BACKGROUND)
    assert (await manager.generate(cutout)).provider == "stability"


async def test_nobody_able_fails_at_once_naming_why_and_no_wait_helps(manager: ProviderManager,
                                                                      fakes: Fakes) -> None:
    photo = GenerationRequest(Category.TEXT, messages=(
        ChatMessage("user", "?", (ImagePart("image/png", PNG_1X1),)),), system="x")
    with pytest.raises(AllProvidersFailed) as caught:
        await manager.generate(photo, route=["deepseek"])
    failure = caught.value
    assert failure.attempts == [] and failure.retry_at is None
    assert failure.skipped == {"deepseek": "deepseek-chat cannot see images"}
    with pytest.raises(AllProvidersFailed) as unread:
        await manager.generate(GenerationRequest(Category.TRANSCRIPTION, audio=b"x", audio_mime="audio/x-ms-wma"))
    assert set(unread.value.skipped) == {"groq", "openai"} and all(f.calls == [] for f in fakes)


async def test_transcription_falls_back_like_every_category_and_is_priced_per_minute(
        manager: ProviderManager, fakes: Fakes) -> None:
    _, openai, groq, _ = fakes
    groq.fail_next(503, openai_error("Service Unavailable", "server_error"))
    voice = GenerationRequest(Category.TRANSCRIPTION, audio=b"OggS voice", audio_mime="audio/ogg", audio_seconds=90)
    result = await manager.generate(voice)
    assert (result.provider, result.text) == ("openai", openai.transcript)
    assert [(a.provider, a.kind) for a in result.attempts] == [("groq", ErrorKind.UNAVAILABLE), ("openai", None)]
    assert result.cost_micros == 9_000  # 1.5 minutes at $0.006
    assert groq.calls_to("/audio/transcriptions") and openai.calls[0].filenames == {"file": "audio.ogg"}
