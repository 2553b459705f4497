"""The manager with the real OpenAI-compatible adapter against loopback fakes (real wire formats)."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.errors import AllProvidersFailed, ErrorKind, ProviderError
from providers.health import Alert
from providers.loader import load_providers
from providers.manager import ProviderManager
from providers.types import Category, GenerationRequest
from tests.fakes.openai import FakeOpenAI, openai_error

FILE = """
[providers.openai]
kind = "openai"
timeout_s = 0.3
models = { text = "gpt-4o-mini" }
prices = { text_in_per_1k = 0.5, text_out_per_1k = 1.0 }

[providers.groq]
kind = "groq"
timeout_s = 2
models = { text = "llama-3.1-8b-instant" }
prices = { text_in_per_1k = 0.001, text_out_per_1k = 0.002 }

[routes]
text = ["openai", "groq"]

[manager]
quick_retry_delay_s = 0
circuit_failures = 3
"""


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    async with FakeOpenAI("openai") as primary, FakeOpenAI("groq") as backup:
        yield primary, backup


@pytest.fixture
def alerts() -> list[Alert]:
    return []


@pytest.fixture
async def manager(tmp_path: Path, fakes: tuple[FakeOpenAI, FakeOpenAI],
                  alerts: list[Alert]) -> AsyncIterator[ProviderManager]:
    path = tmp_path / "providers.toml"
    path.write_text(textwrap.dedent(FILE))
    primary, backup = fakes
    env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": primary.url,
           "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": backup.url}
    async def on_alert(alert: Alert) -> None:
        alerts.append(alert)

    async with ProviderManager(load_providers(path, env=env), on_alert=on_alert) as built:
        yield built


def chat(prompt: str) -> GenerationRequest:
    return GenerationRequest(Category.TEXT, prompt=prompt)


async def test_serves_with_real_usage_and_price(manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, backup = fakes
    result = await manager.generate(chat("hello there"))
    assert (result.provider, result.model, result.text) == ("openai", "gpt-4o-mini", primary.reply_text)
    usage = result.usage
    assert usage.input_tokens > 0 and usage.output_tokens == len(primary.reply_text.split())
    assert result.cost_micros == (usage.input_tokens * 500_000 + usage.output_tokens * 1_000_000) // 1000
    assert not backup.calls


async def test_insufficient_quota_429_parks_the_primary_and_alerts_once(
        manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI], alerts: list[Alert]) -> None:
    primary, backup = fakes
    primary.fail_next(429, openai_error("You exceeded your current quota, please check your plan and billing "
                                        "details.", "insufficient_quota", "insufficient_quota"), times=10)
    for i in range(10):
        result = await manager.generate(chat(f"question {i}"))
        assert result.provider == "groq"
    assert len(primary.calls) == 1 and len(backup.calls) == 10
    await manager.aclose()  # waits for the alert tasks
    assert [(a.provider, a.kind) for a in alerts] == [("openai", ErrorKind.QUOTA_EXHAUSTED)]


async def test_rate_limit_with_retry_after_header_cools_down(
        manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, _ = fakes
    primary.fail_next(429, openai_error("Rate limit reached for requests. Please try again in 20s.", "requests",
                                        "rate_limit_exceeded"), headers={"retry-after": "120"})
    first = await manager.generate(chat("a"))
    assert [(a.provider, a.kind, a.status) for a in first.attempts] == [
        ("openai", ErrorKind.RATE_LIMITED, 429), ("groq", None, None)]
    second = await manager.generate(chat("b"))
    assert second.provider == "groq" and len(primary.calls) == 1
    [health] = [h for h in manager.health_snapshot() if h.name == "openai"]
    cooldown = health.categories[Category.TEXT].cooldown_until
    assert cooldown is not None and cooldown > first.attempts[0].started_at


async def test_hang_past_timeout_and_garbage_fall_back_then_open_the_circuit(
        manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, _ = fakes
    primary.garbage = True
    result = await manager.generate(chat("a"))
    assert [(a.provider, a.kind) for a in result.attempts] == [("openai", ErrorKind.INVALID_RESPONSE), ("groq", None)]
    primary.garbage, primary.hang = False, True
    result = await manager.generate(chat("b"))
    assert [(a.provider, a.kind) for a in result.attempts] == [("openai", ErrorKind.UNAVAILABLE), ("groq", None)]
    assert "timed out" in result.attempts[0].message  # the 0.3 s timeout fired, not an hour's hang
    for prompt in "cdef":
        assert (await manager.generate(chat(prompt))).attempts[0].provider == "groq"
    assert len(primary.calls) == 2  # one garbage answer does not open the circuit; one hang does


async def test_stream_falls_back_before_the_first_delta(
        manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, backup = fakes
    primary.fail_next(503, openai_error("The engine is currently overloaded, please try again later",
                                        "server_error"))
    stream = manager.stream_text(chat("hi"))
    text = "".join([delta async for delta in stream])
    assert text == backup.reply_text and stream.result is not None
    assert stream.result.provider == "groq" and stream.result.usage.output_tokens > 0
    assert stream.result.cost_micros > 0


async def test_stream_error_after_deltas_is_raised_not_spliced(
        manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, backup = fakes
    primary.stream_error_after = 2
    got: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for delta in manager.stream_text(chat("hi")):
            got.append(delta)
    assert "".join(got) == " ".join(primary.reply_text.split()[:2])
    assert caught.value.kind is ErrorKind.UNAVAILABLE and caught.value.provider == "openai"
    assert not backup.calls


async def test_bad_request_is_not_retried_elsewhere(
        manager: ProviderManager, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, backup = fakes
    primary.fail_next(400, openai_error("'messages' is too long", "invalid_request_error", None, "messages"))
    with pytest.raises(AllProvidersFailed) as caught:
        await manager.generate(chat("x"))
    assert caught.value.kind is ErrorKind.BAD_REQUEST and caught.value.retry_at is None
    assert len(primary.calls) == 1 and not backup.calls
