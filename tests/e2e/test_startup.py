"""Start-up failures are one clear line and exit code 1 (a clean SIGTERM stop is checked in test_media)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import StartBot
from tests.e2e.harness import PRIMARY_REPLY, Fakes
from tests.fakes.telegram import FakeTelegram

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]


async def test_missing_bot_token_exits_1(fakes: Fakes, start_bot: StartBot) -> None:
    bot = await start_bot(wait=False, BOT_TOKEN="")
    assert await bot.wait_exit() == 1
    log = bot.log()
    assert "BOT_TOKEN" in log and "Traceback" not in log
    assert fakes.telegram.polls == 0


@pytest.mark.parametrize("content", [
    '[providers.primary]\nkind = "no-such-kind"\n',
    "[providers.primary\nkind = ",  # not TOML at all
], ids=["unknown-kind", "bad-toml"])
async def test_broken_providers_file_exits_1_naming_it(fakes: Fakes, start_bot: StartBot, tmp_path: Path,
                                                       content: str) -> None:
    broken = tmp_path / "broken-providers.toml"
    broken.write_text(content, encoding="utf-8")
    bot = await start_bot(wait=False, PROVIDERS_FILE=str(broken))
    assert await bot.wait_exit() == 1
    log = bot.log()
    assert str(broken) in log and "Traceback" not in log
    assert fakes.telegram.polls == 0


async def test_telegram_down_at_start_is_waited_for(fakes: Fakes, start_bot: StartBot) -> None:
    """Started while its Bot API is unreachable, the bot keeps trying and serves once it comes up."""
    late = FakeTelegram(token=fakes.telegram.token)
    await late.start()
    port = late.port
    await late.stop()  # nothing listens there now: every call is refused
    bot = await start_bot(wait=False, TELEGRAM_API_URL=late.url)
    for _ in range(600):
        if "not reachable yet" in bot.log() or bot.proc is None or bot.proc.returncode is not None:
            break
        await asyncio.sleep(0.05)
    assert "not reachable yet" in bot.log(), bot.log()
    await asyncio.sleep(3)  # long enough for a bot that gives up to be gone (it exits within a second)
    assert bot.proc is not None and bot.proc.returncode is None, bot.log()
    await late.start(port=port)
    try:
        await late.wait_for(lambda: late.polls > 0, 60)
        late.push_message(2901, "hello after the outage")
        await late.wait_for(lambda: PRIMARY_REPLY in " ".join(late.texts(2901)), 30)
        assert "Traceback" not in bot.log()
    finally:
        await bot.stop()
        await late.stop()
