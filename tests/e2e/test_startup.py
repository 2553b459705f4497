"""Start-up failures are one clear line and exit code 1 (a clean SIGTERM stop is checked in test_media)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import StartBot
from tests.e2e.harness import Fakes

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
