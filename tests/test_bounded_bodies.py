"""Every provider body is read within a byte cap and every exchange within a total deadline (providers.bodies,
`Adapter.send`, providers.adapters.sse), against a loopback provider that misbehaves on purpose.

Bytes are asserted from the fake's side (what it managed to write before the client closed), never memory or
time. What a socket buffers on loopback (a few MB) is the slack: far below the 300 MB the fake offers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from providers.adapters.openai_compat import OpenAICompatAdapter
from providers.base import CallContext
from providers.bodies import MAX_ERROR_BYTES
from providers.errors import ErrorKind
from providers.manager import make_client
from providers.types import Category, GenerationRequest
from tests.adapter_support import adapter_config, failure
from tests.fakes.unruly import FLOOD_BYTES, UnrulyProvider

CAP = 1 << 20
SLACK = 32 << 20  # socket buffers on both ends, and the client's read-ahead: nowhere near FLOOD_BYTES


@pytest.fixture
async def fake() -> AsyncIterator[UnrulyProvider]:
    async with UnrulyProvider() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[object]:
    client = make_client()
    yield client
    await client.aclose()


def adapter(fake: UnrulyProvider, mode: str, client: object) -> OpenAICompatAdapter:
    config = adapter_config("openai", f"{fake.url}/{mode}", "test-key", "OPENAI_API_KEY",
                            models={Category.TEXT: "m", Category.AUDIO: "tts"})
    return OpenAICompatAdapter(config, client)  # type: ignore[arg-type]


def ctx(*, timeout_s: float = 5.0, total_s: float = 10.0, media: bool = False) -> CallContext:
    return CallContext(timeout_s=timeout_s, total_timeout_s=total_s, media=media, max_json_bytes=CAP,
                       max_media_bytes=CAP)


CHAT = GenerationRequest(Category.TEXT, prompt="hi")
SPEECH = GenerationRequest(Category.AUDIO, prompt="say this")


async def test_a_json_answer_that_never_ends_is_cut_at_the_cap(fake: UnrulyProvider, http: object) -> None:
    error = await failure(adapter(fake, "flood", http).generate(CHAT, "m", ctx()))
    assert error.kind is ErrorKind.INVALID_RESPONSE and f"more than {CAP} bytes" in error.message
    assert CAP < fake.sent["flood"] < CAP + SLACK < FLOOD_BYTES
    assert not fake.finished["flood"]


async def test_a_body_that_announces_more_than_the_cap_is_refused_unread(fake: UnrulyProvider, http: object) -> None:
    error = await failure(adapter(fake, "flood-declared", http).generate(CHAT, "m", ctx()))
    assert error.kind is ErrorKind.INVALID_RESPONSE and f"announced {FLOOD_BYTES} bytes" in error.message
    assert fake.sent["flood-declared"] < SLACK


async def test_an_endless_error_body_keeps_its_status_and_is_read_only_for_a_message(
        fake: UnrulyProvider, http: object) -> None:
    error = await failure(adapter(fake, "flood-error", http).generate(CHAT, "m", ctx()))
    assert (error.kind, error.status) == (ErrorKind.UNAVAILABLE, 500)
    assert MAX_ERROR_BYTES <= fake.sent["flood-error"] < MAX_ERROR_BYTES + SLACK


async def test_a_media_body_is_cut_at_the_media_cap(fake: UnrulyProvider, http: object) -> None:
    error = await failure(adapter(fake, "flood-audio", http).generate(SPEECH, "tts", ctx(media=True)))
    assert error.kind is ErrorKind.INVALID_RESPONSE and f"more than {CAP} bytes" in error.message
    assert CAP < fake.sent["flood-audio"] < CAP + SLACK


def test_a_media_call_gets_room_for_one_inline_base64_file_and_a_text_call_does_not() -> None:
    media, text = ctx(media=True), ctx()
    assert media.body_cap("application/json") == CAP + (CAP + 2) // 3 * 4
    assert media.body_cap("audio/mpeg") == CAP
    assert text.body_cap("application/json") == text.body_cap("image/png") == CAP


async def test_a_json_answer_trickling_past_the_total_deadline_ends_unavailable(
        fake: UnrulyProvider, http: object) -> None:
    # One byte every 50 ms: the 5 s per-read timeout never fires; only the 0.3 s total can end it.
    error = await failure(adapter(fake, "trickle", http).generate(CHAT, "m", ctx(timeout_s=5.0, total_s=0.3)))
    assert error.kind is ErrorKind.UNAVAILABLE and "no complete answer within 0.3s" in error.message
    assert error.status is None
    assert not fake.finished["trickle"] and fake.sent["trickle"] < fake.steps


async def test_the_same_trickle_within_the_total_deadline_is_served(http: object) -> None:
    async with UnrulyProvider(gap_s=0.0, steps=5) as quick:
        out = await adapter(quick, "trickle", http).generate(CHAT, "m", ctx(timeout_s=5.0, total_s=5.0))
    assert out.text == "late but whole"


async def test_an_sse_line_of_2_mb_ends_the_stream_as_invalid_response(fake: UnrulyProvider, http: object) -> None:
    chunks = adapter(fake, "long-line", http).stream_text(CHAT, "m", ctx())
    with pytest.raises(Exception) as info:
        async for _ in chunks:
            pass
    error = info.value
    assert getattr(error, "kind", None) is ErrorKind.INVALID_RESPONSE
    assert "line longer than" in str(error)


async def test_a_stream_that_is_not_sse_is_read_within_the_json_cap(fake: UnrulyProvider, http: object) -> None:
    # A proxy that ignored stream=true and answers with an endless JSON body.
    chunks = adapter(fake, "flood", http).stream_text(CHAT, "m", ctx())
    with pytest.raises(Exception) as info:
        async for _ in chunks:
            pass
    assert getattr(info.value, "kind", None) is ErrorKind.INVALID_RESPONSE
    assert CAP < fake.sent["flood"] < CAP + SLACK
