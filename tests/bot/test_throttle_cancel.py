"""Flood control lets through only the bot's own /cancel, exactly as the /cancel handler's Command filter
reads it; any other text that merely starts like it is throttled like everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bot.core_harness import CoreHarness

USER = 2002
LOOKALIKES = ["/cancel@other_bot tell me a joke", "/cancel@fake_ai_bot_x hi",
              "/cancel@fake_ai_botx", "/cancelled hi", "/cancel_all", "/CANCEL@evil hi", "/cancel@evil@fake_ai_bot",
              "/cancel@other_bot", " /cancel@x hi", "/cancel@\u0444ake_ai_bot", "/cancel\u200b@fake_ai_bot"]
# aiogram reads an empty mention (`/cancel@`) as no mention: the /cancel handler answers it, so it passes too
OWN = ["/cancel", "/cancel@fake_ai_bot", "/cancel@FAKE_AI_BOT", "/cancel now please", "/cancel@ tell me a joke"]


@pytest.mark.parametrize("lookalike", LOOKALIKES)
async def test_text_that_only_looks_like_cancel_is_throttled(tmp_path: Path, lookalike: str) -> None:
    async with CoreHarness.start(tmp_path, throttle_rate=1, throttle_window=600) as h:
        await h.say(USER, "hi")
        sent = len(h.tg.messages(USER))
        for _ in range(5):
            await h.say(USER, lookalike)
        assert len(h.tg.messages(USER)) == sent + 1  # the one slow-down notice, nothing from any handler
        assert len(h.first.calls_to("/chat/completions")) == 1


async def test_the_bots_own_cancel_always_gets_through(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, throttle_rate=1, throttle_window=600) as h:
        await h.say(USER, "hi")
        await h.say(USER, "hi again")  # throttled: the notice
        sent = len(h.tg.messages(USER))
        for text in OWN:
            await h.say(USER, text)
        assert len(h.tg.messages(USER)) == sent + len(OWN)  # each answered by the /cancel handler
