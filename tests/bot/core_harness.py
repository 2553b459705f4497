"""The bot's core assembled for handler tests: the real app factory, fed updates with `dp.feed_update`.

A real aiogram Bot talks to the loopback fake Bot API; a real ProviderManager talks to loopback provider
fakes; the database is a temporary SQLite file migrated by Alembic.

    async with CoreHarness.start(tmp_path) as h:
        await h.say(USER, "hello")                 # push a message to the fake and feed it to the dispatcher
        h.tg.last_text(USER)
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiogram.types import Update

from bot.app import BotApp, build_app
from bot.settings import Settings
from db.engine import upgrade_database
from providers.loader import load_providers
from tests.fakes.openai import FakeOpenAI
from tests.fakes.replicate import FakeReplicate
from tests.fakes.telegram import FakeTelegram

FIRST_KEY, SECOND_KEY, REPLICATE_KEY = "sk-first-test", "sk-second-test", "r8_core_test"
FIRST_REPLY = "Hello from the first model"
SECOND_REPLY = "The second model answers"

PROVIDERS = """\
[providers.first]
kind = "openai"
base_url = "{first}"
timeout_s = 5
models = {{ text = "gpt-4o-mini", image = "gpt-image-1", image_edit = "gpt-image-1", audio = "gpt-4o-mini-tts" }}
prices = {{ text_in_per_1k = 0.00015, text_out_per_1k = 0.0006, image = 0.04, audio_per_1k_chars = 0.015 }}

[providers.second]
kind = "openai"
base_url = "{second}"
timeout_s = 5
models = {{ text = "gpt-4o" }}
prices = {{ text_in_per_1k = 0.0025, text_out_per_1k = 0.01 }}

[providers.replicate]
kind = "replicate"
base_url = "{replicate}"
timeout_s = 5
models = {{ video = "minimax/video-01" }}
prices = {{ video = 0.5 }}
options = {{ poll_interval_s = 0.05, prefer_wait_s = 0 }}

[routes]
text = ["first", "second"]
image = ["first"]
image_edit = ["first"]
video = ["replicate"]
audio = ["first"]

[labels."Fast chat"]
category = "text"
credits = 1

[labels."Smart chat"]
category = "text"
credits = 3
route = ["second"]

[labels."Picture"]
category = "image"
credits = 5

[labels."Photo edit"]
category = "image_edit"
credits = 3

[labels."Video"]
category = "video"
credits = 20

[labels."Voice"]
category = "audio"
credits = 2
"""


async def eventually(probe: Callable[[], object], within_s: float = 5.0) -> None:
    """Poll something that cannot notify us (a provider fake, the database file) until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not probe():
        if loop.time() > deadline:
            raise TimeoutError(f"not met within {within_s}s")
        await asyncio.sleep(0.01)


class CoreHarness:
    def __init__(self, tmp: Path, tg: FakeTelegram, first: FakeOpenAI, second: FakeOpenAI,
                 replicate: FakeReplicate, settings: Settings) -> None:
        self.tmp, self.tg, self.first, self.second, self.replicate = tmp, tg, first, second, replicate
        self.settings = settings
        self.db_path = tmp / "bot.db"
        self.app: BotApp | None = None

    @classmethod
    @asynccontextmanager
    async def start(cls, tmp: Path, **settings: Any) -> AsyncIterator[CoreHarness]:
        tg, first, second = FakeTelegram(), FakeOpenAI(api_key=FIRST_KEY), FakeOpenAI(api_key=SECOND_KEY)
        first.reply_text, second.reply_text = FIRST_REPLY, SECOND_REPLY
        replicate = FakeReplicate(token=REPLICATE_KEY, polls_until_done=10**9, output_style="string",
                                  output_ext="mp4")
        servers = [tg, first, second, replicate]
        for server in servers:
            await server.start()
        values: dict[str, Any] = {
            "bot_token": tg.token, "telegram_api_url": tg.url, "database_url": f"sqlite+aiosqlite:///{tmp / 'bot.db'}",
            "admin_ids": "1001", "free_credits": 10, "stream_edit_interval": 0.01, "progress_after": 0.05,
            "progress_interval": 0.05, "throttle_rate": 100, **settings}
        harness = cls(tmp, tg, first, second, replicate, Settings(_env_file=None, **values))  # type: ignore[call-arg]
        try:
            await asyncio.to_thread(upgrade_database, harness.settings.database_url)
            await harness.boot()
            yield harness
        finally:
            if harness.app is not None:
                await harness.app.aclose()
            for server in servers:
                await server.stop()

    async def boot(self) -> BotApp:
        """Build the app (again, as after a restart: in-memory state gone, the database kept) and run its
        start-up hook (stale settlement, commands, resume, scheduler)."""
        if self.app is not None:
            await self.app.aclose()
        path = self.tmp / "providers.toml"
        path.write_text(PROVIDERS.format(first=self.first.url, second=self.second.url,
                                         replicate=self.replicate.base_url), encoding="utf-8")
        env = {"FIRST_API_KEY": FIRST_KEY, "SECOND_API_KEY": SECOND_KEY, "REPLICATE_API_KEY": REPLICATE_KEY}
        self.app = build_app(self.settings, load_providers(path, env=env))
        await self.app.on_startup()
        return self.app

    # --- feeding updates ---------------------------------------------------------------------
    async def feed(self, update_id: int) -> None:
        assert self.app is not None
        raw = self.tg._update_log[update_id]
        update = Update.model_validate(raw, context={"bot": self.app.bot})
        await self.app.dp.feed_update(self.app.bot, update)

    async def say(self, user_id: int, text: str, **kw: Any) -> int:
        update_id = self.tg.push_message(user_id, text, **kw)
        await self.feed(update_id)
        return update_id

    def say_later(self, user_id: int, text: str) -> asyncio.Task[int]:
        """Feed in the background (as polling with handle_as_tasks does), e.g. a long request."""
        return asyncio.create_task(self.say(user_id, text))

    # --- reading the database ----------------------------------------------------------------
    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def credits(self, user_id: int) -> int:
        return int(self.rows("SELECT credits FROM users WHERE id = ?", user_id)[0]["credits"])

    def requests(self, user_id: int) -> list[sqlite3.Row]:
        return self.rows("SELECT * FROM requests WHERE user_id = ? ORDER BY id", user_id)
