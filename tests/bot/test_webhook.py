"""Webhook mode: setWebhook with the secret, updates accepted only with Telegram's secret header."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp

from bot.webhook import run_webhook
from tests.bot.core_harness import FIRST_REPLY, CoreHarness

USER = 2002


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_checks_the_secret_and_serves_updates(tmp_path: Path) -> None:
    port = free_port()
    async with CoreHarness.start(tmp_path, webhook_url="https://bot.example.com/tg/hook", webhook_host="127.0.0.1",
                                 webhook_port=port, webhook_secret="s3cret_Token-1") as h:
        assert h.app is not None
        stop = asyncio.Event()
        server = asyncio.create_task(run_webhook(h.app, stop))
        await h.tg.wait_for(lambda: h.tg.webhook.get("url"))
        assert h.tg.webhook["url"] == "https://bot.example.com/tg/hook"
        assert h.tg.webhook["secret_token"] == "s3cret_Token-1"
        assert "message" in h.tg.webhook["allowed_updates"] and "callback_query" in h.tg.webhook["allowed_updates"]

        raw = h.tg._update_log[h.tg.push_message(USER, "hi over the webhook")]
        url = f"http://127.0.0.1:{port}/tg/hook"
        async with aiohttp.ClientSession() as client:
            async with client.post(url, json=raw) as missing:
                assert missing.status == 401
            async with client.post(url, json=raw, headers={"X-Telegram-Bot-Api-Secret-Token": "guess"}) as wrong:
                assert wrong.status == 401
            assert h.tg.messages(USER) == []
            async with client.post(url, json=raw, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret_Token-1"}) as ok:
                assert ok.status == 200
        await h.tg.wait_for(lambda: FIRST_REPLY in h.tg.texts(USER), timeout=10)
        stop.set()
        await asyncio.wait_for(server, 10)


async def test_a_webhook_url_telegram_refuses_is_a_startup_error(tmp_path: Path) -> None:
    from bot.errors import StartupError

    async with CoreHarness.start(tmp_path, webhook_url="http://plain-http.example.com/hook", webhook_host="127.0.0.1",
                                 webhook_port=free_port()) as h:
        assert h.app is not None
        try:
            await asyncio.wait_for(run_webhook(h.app, asyncio.Event()), 10)
        except StartupError as exc:
            assert "HTTPS URL must be provided" in str(exc)
        else:
            raise AssertionError("run_webhook should have refused to start")
