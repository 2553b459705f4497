"""Shared by the admin-side tests: a migrated SQLite copy, the fake Bot API with a real Bot, settings,
and a request log with known figures written through the db repositories."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings
from db.engine import make_engine, make_session_maker, upgrade_database
from db.repo.accounting import AttemptRecord, ServedRecord, close_failed, close_served, record_attempt, reserve_request
from db.repo.users import upsert_user
from tests.fakes.telegram import FakeTelegram

Sessions = async_sessionmaker[AsyncSession]
ADMIN = 1001
ADMIN_RU = 1002
USER = 2001
TZ = "Europe/Berlin"


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
                                 "admin_ids": f"{ADMIN},{ADMIN_RU}", "timezone": TZ, "free_credits": 10}
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
            res = await reserve_request(s, tg_id=item.user, update_id=None, label="Label", category=item.category,
                                        prompt=f"prompt {n}", credits=item.credits, chat_id=item.user,
                                        route_first_provider=first, now=at)
            assert res.request_id is not None, res
            for order, (provider, kind, latency, cost) in enumerate(item.attempts):
                await record_attempt(s, res.request_id, AttemptRecord(
                    provider, "model-x", item.category, order, kind, 200 if kind is None else 503, latency, cost,
                    started_at=at))
            provider, _, latency, cost = item.attempts[-1]
            if item.served:
                await close_served(s, res.request_id, ServedRecord(provider, "model-x", cost, latency,
                                                                   finished_at=at))
            else:
                await close_failed(s, res.request_id, error_kind="unavailable", now=at)
