"""`python -m providers` as a subprocess, against a loopback fake OpenAI and a temporary providers file."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.openai import PNG_1X1, FakeOpenAI, openai_error

REPO = Path(__file__).resolve().parents[1]
FILE = """
[providers.openai]
kind = "openai"
timeout_s = 5
models = { text = "gpt-4o-mini", image = "dall-e-3" }
prices = { text_in_per_1k = 1.0, text_out_per_1k = 2.0, image = 0.04 }

[providers.anthropic]
kind = "anthropic"
models = { text = "claude-haiku-4-5" }

[labels."Fast chat"]
category = "text"
credits = 1
"""


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def run(tmp_path: Path, fake: FakeOpenAI, *args: str, text: str = FILE,
              dotenv: str | None = None) -> tuple[int, str, str]:
    providers_file = tmp_path / "providers.toml"
    providers_file.write_text(textwrap.dedent(text))
    if dotenv is not None:  # in the subprocess's cwd, where the bot would read it
        (tmp_path / ".env").write_text(dotenv)
    # Only what the CLI needs: no real key from the developer's shell can leak into the run.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "PROVIDERS_FILE": str(providers_file),
           "OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": fake.url}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "providers", *args, cwd=tmp_path, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_try_text_prints_who_served_each_attempt_and_the_cost(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.fail_next(500, openai_error("The server had an error while processing your request.", "server_error"))
    code, out, err = await run(tmp_path, fake, "try", "text", "Say hi", "--label", "Fast chat")
    assert code == 0, err
    assert out.startswith("served by openai (gpt-4o-mini)")
    assert "1. openai" in out and "unavailable" in out and " 500 " in out  # the quick retry's first failure
    assert "2. openai" in out and " ok " in out
    assert fake.reply_text in out and "test-key" not in out + err
    assert [c.json["messages"][-1]["content"] for c in fake.calls] == ["Say hi", "Say hi"]


async def test_try_json_and_media_saved_from_url(tmp_path: Path, fake: FakeOpenAI) -> None:
    target = tmp_path / "fox.png"
    code, out, err = await run(tmp_path, fake, "try", "image", "a red fox", "--json", "--out", str(target),
                               "-o", "response_format=url")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and report["provider"] == "openai" and report["cost_micros"] == 40_000
    assert report["files"] == [str(target)] and target.read_bytes() == PNG_1X1
    assert [a["kind"] for a in report["attempts"]] == [None]
    assert len(fake.calls_to("/files/")) == 1  # downloaded from the provider's URL


async def test_all_failed_exits_1_with_attempts_and_retry_time(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.fail_next(429, openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
                   headers={"retry-after": "90"})
    code, out, _ = await run(tmp_path, fake, "try", "text", "hello")
    assert code == 1
    assert "all providers failed for text (rate_limited)" in out
    assert "1. openai" in out and " 429 " in out
    assert "skipped anthropic: disabled: no API key (set ANTHROPIC_API_KEY)" in out
    assert "retry after 20" in out  # an ISO timestamp


async def test_all_failed_json(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.fail_next(429, openai_error("You exceeded your current quota", "insufficient_quota", "insufficient_quota"))
    code, out, _ = await run(tmp_path, fake, "try", "text", "hello", "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and report["kind"] == "quota_exhausted"
    assert report["attempts"][0]["status"] == 429 and report["retry_at"]


async def test_check_lists_providers_routes_labels(tmp_path: Path, fake: FakeOpenAI) -> None:
    code, out, _ = await run(tmp_path, fake, "check")
    assert code == 0
    assert "openai" in out and fake.url in out and "enabled " in out
    assert "-> no API key (set ANTHROPIC_API_KEY)" in out
    assert "text        priority  openai > (anthropic)" in out
    assert "'Fast chat'" in out and "1 of 2 providers enabled" in out


async def test_bad_file_and_bad_usage_exit_2(tmp_path: Path, fake: FakeOpenAI) -> None:
    code, _, err = await run(tmp_path, fake, "check", text=FILE + "\n[routes]\ntext = ['ghost']\n")
    assert code == 2 and "providers.toml: [routes] text: route names provider 'ghost'" in err
    code, _, err = await run(tmp_path, fake, "try", "text", "hi", "--label", "Nope")
    assert code == 2 and "unknown label 'Nope'" in err
    code, _, err = await run(tmp_path, fake, "try", "image_edit", "remove the car")
    assert code == 2 and "needs --image" in err


async def test_check_reads_keys_from_dotenv_in_the_working_directory(tmp_path: Path, fake: FakeOpenAI) -> None:
    code, out, err = await run(tmp_path, fake, "check", dotenv="ANTHROPIC_API_KEY=a-from-file\n")
    assert code == 0, err
    assert "no API key (set ANTHROPIC_API_KEY)" not in out
    assert "text        priority  openai > anthropic" in out and "2 of 2 providers enabled" in out
    assert "a-from-file" not in out + err


async def test_the_environment_wins_over_dotenv(tmp_path: Path, fake: FakeOpenAI) -> None:
    dotenv = "OPENAI_API_KEY=file-key\nOPENAI_BASE_URL=http://from-dotenv.invalid/v1\n"
    code, out, err = await run(tmp_path, fake, "check", dotenv=dotenv)
    assert code == 0, err
    assert fake.url in out and "from-dotenv.invalid" not in out
    code, out, err = await run(tmp_path, fake, "try", "text", "hi", dotenv=dotenv)
    assert code == 0, err
    assert fake.calls[-1].headers.get("Authorization") == "Bearer test-key"  # the environment's key
