"""The bot's core assembled for handler tests: the real app factory, fed updates with `dp.feed_update`.

A real aiogram Bot talks to the loopback fake Bot API; a real ProviderManager talks to loopback provider
fakes; the database is a temporary SQLite file migrated by Alembic.

    async with CoreHarness.start(tmp_path) as h:
        await h.say(USER, "hello")                 # push a message to the fake and feed it to the dispatcher
        h.tg.last_text(USER)
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiogram.types import Update

from bot.app import BotApp, build_app
from bot.services.lifecycle import Queue
from bot.settings import Settings
from bot.shared import SendRates
from db.engine import upgrade_database
from db.repo.users import grant_credits
from providers.loader import load_providers
from tests.support.botenv import Fakes, ProvidersFile, text_fake

FIRST_KEY, SECOND_KEY = "sk-first-test", "sk-second-test"
FIRST_REPLY = "Hello from the first model"
SECOND_REPLY = "The second model answers"

# Two OpenAI services: the first for everything, the second as the text fallback and the eyes of "Eyes".
PROVIDERS = ProvidersFile(names=("first", "second"), replicate_poll_s=0.05, blocks="""\
[providers.first]
kind = "openai"
base_url = "{primary}"
timeout_s = 5
models = {{ text = "gpt-4o-mini", image = "gpt-image-1", image_edit = "gpt-image-1", audio = "gpt-4o-mini-tts", \
transcription = "gpt-4o-mini-transcribe" }}
prices = {{ text_in_per_1k = 0.00015, text_out_per_1k = 0.0006, image = 0.04, audio_per_1k_chars = 0.015 }}

[providers.second]
kind = "openai"
base_url = "{secondary}"
timeout_s = 5
models = {{ text = "gpt-4o" }}
prices = {{ text_in_per_1k = 0.0025, text_out_per_1k = 0.01 }}
""", media_routes='image = ["first"]\nimage_edit = ["first"]\naudio = ["first"]\ntranscription = ["first"]\n',
    media_labels="""
[labels."Photo edit"]
category = "image_edit"
credits = 3

[labels."Eyes"]
category = "text"
credits = 2
vision = true
route = ["second"]

[labels."Transcription"]
category = "transcription"
credits = 1
""")


_template: Path | None = None


def migrate(db_path: Path) -> None:
    """Alembic migrates one template per test run and every harness starts from a copy of it: running
    the migrations for each of the many harnesses would cost a sixth of a second each."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="core-harness-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        upgrade_database(f"sqlite+aiosqlite:///{folder / 'template.db'}")
        _template = folder / "template.db"
    shutil.copyfile(_template, db_path)


async def eventually(probe: Callable[[], object], within_s: float = 5.0) -> None:
    """Poll something that cannot notify us (a provider fake, the database file) until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not probe():
        if loop.time() > deadline:
            raise TimeoutError(f"not met within {within_s}s")
        await asyncio.sleep(0.01)


class CoreHarness:
    def __init__(self, tmp: Path, fakes: Fakes, settings: Settings, missing_keys: Collection[str] = (),
                 queue: Queue | None = None) -> None:
        self.tmp, self.fakes = tmp, fakes
        self.missing_keys = frozenset(missing_keys)  # provider API keys left out of the environment
        self.tg, self.replicate = fakes.telegram, fakes.replicate
        self.first, self.second = fakes.primary, fakes.secondary
        self.settings = settings
        self.db_path = tmp / "bot.db"
        self.app: BotApp | None = None
        self.queue = queue  # a front of the distributed mode hands its requests to this queue

    @classmethod
    @asynccontextmanager
    async def start(cls, tmp: Path, *, missing_keys: Collection[str] = (), queue: Queue | None = None,
                    **settings: Any) -> AsyncIterator[CoreHarness]:
        fakes = await Fakes.start(text_fake("openai", FIRST_KEY, FIRST_REPLY),
                                  text_fake("openai", SECOND_KEY, SECOND_REPLY))
        tg = fakes.telegram
        values: dict[str, Any] = {
            "bot_token": tg.token, "telegram_api_url": tg.url, "database_url": f"sqlite+aiosqlite:///{tmp / 'bot.db'}",
            "admin_ids": "1001", "free_credits": 10, "stream_edit_interval": 0.01, "progress_after": 0.05,
            "progress_interval": 0.05, "throttle_rate": 100, **settings}
        harness = cls(tmp, fakes, Settings(_env_file=None, **values), missing_keys,
                      queue)
        try:
            await asyncio.to_thread(migrate, harness.db_path)
            await harness.boot()
            yield harness
        finally:
            if harness.app is not None:
                await harness.app.aclose()
            await fakes.stop()

    async def boot(self) -> BotApp:
        """Build the app (again, as after a restart: in-memory state gone, the database kept) and run its
        start-up hook (stale settlement, commands, resume, scheduler)."""
        if self.app is not None:
            await self.app.aclose()
        path = PROVIDERS.write(self.tmp / "providers.toml", self.fakes)
        env = {k: v for k, v in PROVIDERS.keys(self.fakes).items() if k not in self.missing_keys}
        # unpaced: a test's fake Bot API has no flood limits, and pacing would only make the suite slow
        self.app = build_app(self.settings, load_providers(path, env=env), self.queue,
                             send_rates=SendRates.unpaced())
        await self.app.on_startup()
        return self.app

    @property
    def live(self) -> BotApp:
        """The app the last boot() built."""
        assert self.app is not None, "not booted"
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

    async def say_in_group(self, user_id: int, group_id: int, text: str) -> int:
        """A message from a user in a group (the fake pushes private messages only)."""
        user = self.tg.remember_user(user_id, "Tester", "en", None, None)
        extra: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            extra["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        message = self.tg.new_message(group_id, user, extra)
        message["chat"] = {"id": group_id, "type": "supergroup", "title": "A group"}
        update_id = self.tg.push_update({"message": message})
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

    async def user_with_credits(self, user_id: int, credits: int) -> None:
        """A user who said /start (and got the free credits), then was granted up to `credits`."""
        await self.say(user_id, "/start")
        async with self.live.sessions() as session, session.begin():
            await grant_credits(session, user_id, credits - self.settings.free_credits, reason="grant")

    def credits(self, user_id: int) -> int:
        return int(self.rows("SELECT credits FROM users WHERE id = ?", user_id)[0]["credits"])

    def requests(self, user_id: int) -> list[sqlite3.Row]:
        return self.rows("SELECT * FROM requests WHERE user_id = ? ORDER BY id", user_id)
