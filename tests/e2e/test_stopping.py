"""SIGTERM and SIGINT stop `python -m bot` cleanly in every phase: exit 0, "stopped" logged, no traceback."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable

import pytest

from tests.e2e.conftest import StartBot
from tests.e2e.harness import BotProcess, Fakes

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]


def closed_port_url() -> str:
    """A loopback URL nothing listens on: every Bot API call is refused, so the bot keeps waiting."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def until(bot: BotProcess, ready: Callable[[], bool], within_s: float = 30.0) -> None:
    for _ in range(int(within_s / 0.05)):
        if ready():
            return
        assert bot.proc is not None and bot.proc.returncode is None, bot.log()
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready within {within_s}s:\n{bot.log()}")


async def stops_cleanly(bot: BotProcess, sig: signal.Signals) -> None:
    assert bot.proc is not None
    bot.proc.send_signal(sig)
    assert await bot.wait_exit(within_s=5) == 0, bot.log()
    log = bot.log()
    assert "| stopped" in log and "Traceback" not in log, log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_while_waiting_for_telegram_exits_0_within_seconds(start_bot: StartBot,
                                                                          sig: signal.Signals) -> None:
    bot = await start_bot(wait=False, TELEGRAM_API_URL=closed_port_url())
    await until(bot, lambda: "not reachable yet" in bot.log())
    await stops_cleanly(bot, sig)


async def test_sigterm_while_polling_exits_0(start_bot: StartBot) -> None:
    bot = await start_bot()
    await stops_cleanly(bot, signal.SIGTERM)


async def test_sigterm_in_webhook_mode_exits_0_and_closes_the_server(fakes: Fakes, start_bot: StartBot) -> None:
    port = int(closed_port_url().rsplit(":", 1)[1])
    bot = await start_bot(wait=False, WEBHOOK_URL="https://bot.example/hook", WEBHOOK_HOST="127.0.0.1",
                          WEBHOOK_PORT=str(port))
    await until(bot, lambda: fakes.telegram.webhook.get("url") == "https://bot.example/hook")
    await until(bot, lambda: "webhook server on" in bot.log())
    await stops_cleanly(bot, signal.SIGTERM)
    assert "stopping the webhook server" in bot.log()
    with socket.socket() as sock:  # the server's port is free again
        sock.bind(("127.0.0.1", port))
    fakes.telegram.webhook = {}  # the shared fake polls again for later tests
