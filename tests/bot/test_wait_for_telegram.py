"""Start-up waits for Telegram: a network error, a 5xx or a flood wait is waited out with backoff; a token
Telegram refuses is a start-up error at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import StartupError
from tests.bot.core_harness import CoreHarness

OVERLOADED = {"ok": False, "error_code": 502, "description": "Bad Gateway"}


async def test_server_errors_and_flood_waits_at_start_are_waited_out(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path) as h:
        h.tg.fail_next(502, OVERLOADED, times=2, path_contains="getMe")
        h.tg.fail_next(429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1",
                             "parameters": {"retry_after": 1}}, path_contains="getMe")
        before = len(h.tg.calls_of("getMe"))
        await h.live.wait_for_telegram(delete_webhook=False, first_delay_s=0.01)
        assert len(h.tg.calls_of("getMe")) - before == 4  # three refused, the fourth answered


async def test_a_token_telegram_refuses_at_start_is_a_startup_error(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path) as h:
        h.tg.fail_next(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, path_contains="getMe")
        with pytest.raises(StartupError, match="BOT_TOKEN"):
            await h.live.wait_for_telegram(delete_webhook=False, first_delay_s=0.01)
