"""Provider keys never leave the manager in an error: whatever an API echoes back (a header, a URL), the
attempt, the failure and its log line carry `***` in place of the key."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from loguru import logger

from providers.errors import AllProvidersFailed, ErrorKind
from providers.loader import load_providers
from providers.manager import ProviderManager
from providers.redact import MASK, redact
from providers.types import Category, GenerationRequest
from tests.fakes.anthropic import FakeAnthropic, anthropic_error

KEY = "sk-ant-secret-0123456789"
FILE = """
[providers.claude]
kind = "anthropic"
timeout_s = 2
models = { text = "claude-3-5-haiku-latest" }
prices = { text_in_per_1k = 0.8, text_out_per_1k = 4.0 }

[routes]
text = ["claude"]

[manager]
quick_retry_delay_s = 0
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=KEY) as server:
        yield server


@pytest.fixture
async def manager(tmp_path: Path, fake: FakeAnthropic) -> AsyncIterator[ProviderManager]:
    path = tmp_path / "providers.toml"
    path.write_text(textwrap.dedent(FILE))
    env = {"CLAUDE_API_KEY": KEY, "CLAUDE_BASE_URL": fake.url}
    async with ProviderManager(load_providers(path, env=env)) as built:
        yield built


def test_redact_masks_a_secret_as_is_and_percent_encoded() -> None:
    token = "123456:AAE-secret_token"
    text = f"GET /file/bot{token}/a.jpg and ?t=123456%3AAAE-secret_token"
    assert redact(text, [token, None, ""]) == f"GET /file/bot{MASK}/a.jpg and ?t={MASK}"


def test_redact_leaves_strings_too_short_to_be_keys_alone() -> None:
    assert redact("kind: bad_request", ["k", "bad"]) == "kind: bad_request"


async def test_a_key_echoed_in_an_error_body_is_masked_in_attempts_failure_and_log(
        manager: ProviderManager, fake: FakeAnthropic) -> None:
    echoed = f"invalid request: headers were x-api-key={KEY}; url https://api.example/v1?key={KEY}"
    fake.fail_next(400, anthropic_error("invalid_request_error", echoed))
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG", format="{message}")
    try:
        with pytest.raises(AllProvidersFailed) as caught:
            await manager.generate(GenerationRequest(Category.TEXT, prompt="hi"))
    finally:
        logger.remove(sink)
    [attempt] = caught.value.attempts
    assert attempt.kind is ErrorKind.BAD_REQUEST
    assert "invalid request" in attempt.message and MASK in attempt.message
    for text in (attempt.message, str(caught.value), repr(caught.value), *lines):
        assert KEY not in text
    assert any(MASK in line for line in lines)
