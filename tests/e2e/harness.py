"""Run `python -m bot` as a subprocess against loopback fakes: the Bot API and the providers.

The bot gets an explicit environment (nothing inherited but PATH), a temporary SQLite database and a
providers file whose base URLs point at the fakes. Its stdout/stderr go to a log file that the fixtures
print when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from tests.fakes.telegram import FakeTelegram
from tests.support.botenv import Fakes, ProvidersFile, text_fake

ROOT = Path(__file__).resolve().parents[2]
ADMIN_ID = 1001
FREE_CREDITS = 100
CREDIT_PACKS = "100:50,550:250"  # what /buy sells for Telegram Stars
PRIMARY_KEY, SECONDARY_KEY = "sk-or-primary-test", "sk-secondary-test"
PRIMARY_REPLY = "Primary model says hello to you"
SECONDARY_REPLY = "Secondary model answers instead"

# OpenRouter first for text; OpenAI as the fallback, for images and speech, and the eyes of "Eyes".
PROVIDERS = ProvidersFile(names=("primary", "secondary"), replicate_poll_s=0.1, blocks="""\
[providers.primary]
kind = "openrouter"
base_url = "{primary}"
timeout_s = 5
models = {{ text = "openai/gpt-4o-mini" }}
prices = {{ text_in_per_1k = 0.00015, text_out_per_1k = 0.0006 }}

[providers.secondary]
kind = "openai"
base_url = "{secondary}"
timeout_s = 5
models = {{ text = "gpt-4o-mini", image = "gpt-image-1", audio = "gpt-4o-mini-tts" }}
prices = {{ text_in_per_1k = 0.00015, text_out_per_1k = 0.0006, image = 0.04, audio_per_1k_chars = 0.015 }}
""", media_routes='image = ["secondary"]\naudio = ["secondary"]\n', media_labels="""
[labels."Eyes"]
category = "text"
credits = 2
vision = true
route = ["secondary"]
""")


async def start_fakes() -> Fakes:
    return await Fakes.start(text_fake("openrouter", PRIMARY_KEY, PRIMARY_REPLY),
                             text_fake("openai", SECONDARY_KEY, SECONDARY_REPLY))


def write_providers_file(path: Path, fakes: Fakes) -> Path:
    return PROVIDERS.write(path, fakes)


def bot_env(tmp: Path, fakes: Fakes, providers_file: Path, **overrides: str) -> dict[str, str]:
    """Everything the bot reads, set explicitly; a developer's shell or .env must not leak in."""
    (tmp / "home").mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp / "home"),
        "MPLCONFIGDIR": str(tmp / "home"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "BOT_TOKEN": fakes.telegram.token,
        "TELEGRAM_API_URL": fakes.telegram.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'bot.db'}",
        "PROVIDERS_FILE": str(providers_file),
        "ADMIN_IDS": str(ADMIN_ID),
        "FREE_CREDITS": str(FREE_CREDITS),
        "DIGEST_TIME": "03:17",  # never reached during a test run of a few seconds... unless at 03:17
        "TIMEZONE": "UTC",
        "LOG_LEVEL": "DEBUG",
        "STREAM_EDIT_INTERVAL": "0.2",
        "PROGRESS_AFTER": "0.5",
        "PROGRESS_INTERVAL": "0.5",
        **PROVIDERS.keys(fakes),
        "WEBHOOK_URL": "",
        "CREDIT_PACKS": CREDIT_PACKS,
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


class BotProcess:
    """One `python -m bot` run; `start()` returns once it long-polls (or raises with its log)."""

    def __init__(self, env: dict[str, str], log_path: Path, telegram: FakeTelegram) -> None:
        self.env = env
        self.log_path = log_path
        self.telegram = telegram
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(b"\n===== python -m bot =====\n")
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=str(ROOT), env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT)

    async def start(self, within_s: float = 60.0) -> BotProcess:
        polls_before = self.telegram.polls
        await self.spawn()
        assert self.proc is not None
        polling = asyncio.ensure_future(self.telegram.wait_for(lambda: self.telegram.polls > polls_before,
                                                               within_s))
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait({polling, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited in done:
            polling.cancel()
            raise AssertionError(f"the bot exited with {self.proc.returncode} before polling:\n{self.log()}")
        exited.cancel()
        if polling.exception() is not None:
            raise AssertionError(f"the bot did not call getUpdates within {within_s}s:\n{self.log()}")
        return self

    async def wait_exit(self, within_s: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), within_s)
        except TimeoutError:
            raise AssertionError(f"the bot is still running after {within_s}s:\n{self.log()}") from None

    async def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within `grace` seconds."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            await self.kill()
            return None

    async def kill(self) -> None:
        """kill -9: no shutdown hooks run, as in a crash."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
