"""Shared by the admin-side tests: a migrated SQLite copy, the fake Bot API with a real Bot, settings,
and a request log with known figures written through the db repositories."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handlers import routers
from bot.middlewares import setup_middlewares
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.engine import make_engine, make_session_maker, upgrade_database
from db.repo.lifecycle import close_failed, close_served, record_attempts, reserve_request
from db.repo.records import AttemptRecord, ServedRecord
from db.repo.users import upsert_user
from providers.manager import ProviderManager
from tests.fakes.telegram import FakeTelegram

Sessions = async_sessionmaker[AsyncSession]
ADMIN = 1001
ADMIN_RU = 1002
USER = 2001
TZ = "Europe/Berlin"
OWNER = "admin-tests"  # the process that writes the logged requests
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # a lease that never runs out


@pytest.fixture(scope="session")
def admin_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once per run by Alembic (not create_all); each test gets a copy."""
    path = tmp_path_factory.mktemp("admin-template") / "template.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def sessions(admin_db_template: Path, tmp_path: Path) -> AsyncIterator[Sessions]:
    path = tmp_path / "bot.db"
    shutil.copyfile(admin_db_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    yield make_session_maker(engine)
    await engine.dispose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url), timeout=5))
    yield bot
    await bot.session.close()


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"bot_token": "123456789:AAFakeTokenForTests_abcdefghijklmno",
                                 "admin_ids": f"{ADMIN},{ADMIN_RU}", "timezone": TZ, "free_credits": 10,
                                 "throttle_rate": 1000}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass(frozen=True)
class Logged:
    """One finished request: the attempts in order as (provider, kind or None, latency ms, cost micros)."""

    user: int
    category: str
    attempts: Sequence[tuple[str, str | None, int, int]]
    credits: int = 1
    served: bool = True


async def add_user(sessions: Sessions, tg_id: int, *, username: str | None = None, first_name: str = "Tester",
                   language: str = "en", credits: int = 10) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, tg_id, username=username, first_name=first_name, language=language,
                          is_admin=tg_id in (ADMIN, ADMIN_RU), free_credits=credits)


async def log_requests(sessions: Sessions, start: datetime, requests: Sequence[Logged]) -> None:
    """Write each request as the bot does: reserve, record every attempt, close served or failed."""
    async with sessions() as s, s.begin():
        for n, item in enumerate(requests):
            at = start + timedelta(minutes=n)
            first = item.attempts[0][0]
            res = await reserve_request(s, owner=OWNER, lease_until=FAR, tg_id=item.user, update_id=None,
                                        label="Label", category=item.category, prompt=f"prompt {n}",
                                        credits=item.credits, chat_id=item.user, route_first_provider=first, now=at)
            assert res.ok and res.request_id is not None, res
            await record_attempts(s, res.request_id, [AttemptRecord(
                provider, "model-x", item.category, order, kind, 200 if kind is None else 503, latency, cost,
                started_at=at) for order, (provider, kind, latency, cost) in enumerate(item.attempts)])
            provider, _, latency, cost = item.attempts[-1]
            if item.served:
                await close_served(s, res.request_id, OWNER, ServedRecord(provider, "model-x", cost, latency,
                                                                          finished_at=at))
            else:
                await close_failed(s, res.request_id, OWNER, error_kind="unavailable", now=at)


class Feeder:
    """Feeds updates as Telegram would send them to a Dispatcher with the real middlewares and routers."""

    def __init__(self, dp: Dispatcher, bot: Bot) -> None:
        self.dp, self.bot = dp, bot
        self.next_id = 1

    async def command(self, user_id: int, text: str, *, chat_id: int | None = None, chat_type: str = "private",
                      language: str = "en") -> None:
        self.next_id += 1
        sender = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "language_code": language}
        chat = ({"id": user_id, "type": "private", "first_name": sender["first_name"]} if chat_type == "private"
                else {"id": chat_id or -100500, "type": chat_type, "title": "A group"})
        word = text.split()[0]
        message = {"message_id": self.next_id, "date": int(time.time()), "chat": chat, "from": sender, "text": text,
                   "entities": [{"type": "bot_command", "offset": 0, "length": len(word)}]}
        update = Update.model_validate({"update_id": self.next_id, "message": message}, context={"bot": self.bot})
        await self.dp.feed_update(self.bot, update)


def make_dispatcher(settings: Settings, sessions: Sessions, manager: ProviderManager | None = None) -> Dispatcher:
    """As bot/app.py builds it: workflow data, the middlewares, every router in order."""
    dp = Dispatcher(settings=settings, sessions=sessions, manager=manager,
                    db_writes=WriteQueue(sessions, batched=False))
    setup_middlewares(dp, settings)
    dp.include_routers(*routers())
    return dp
