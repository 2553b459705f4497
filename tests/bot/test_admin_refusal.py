"""Nobody but ADMIN_IDS, in a private chat, gets any admin data: every command, every argument form."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from aiogram import Bot
from sqlalchemy import func, select

from bot.handlers.admin import ADMIN_COMMANDS
from bot.i18n import Translate
from bot.settings import Settings
from db.models import LedgerEntry
from db.periods import period_named
from tests.bot import admin_support as support
from tests.bot.admin_support import ADMIN, TZ, USER, Feeder, Logged, Sessions, add_user, log_requests, make_dispatcher
from tests.fakes.telegram import FakeTelegram

# pytest fixtures shared by the admin tests (assigned, not imported, so they are not taken for unused names)
admin_db_template, sessions, fake, bot = support.admin_db_template, support.sessions, support.fake, support.bot

OUTSIDER = 5005
ARGUMENTS = ["", " text", " text 7d", " 30d", f" {USER} 50", f" {USER}", " yesterday", " garbage"]
REFUSAL_EN = Translate("en")("admin.refused")
REFUSAL_RU = Translate("ru")("admin.refused")


@pytest.fixture
def settings() -> Settings:
    return support.make_settings()


@pytest.fixture
async def feed(bot: Bot, sessions: Sessions, settings: Settings) -> Feeder:
    await add_user(sessions, USER, username="carol", credits=10)
    await add_user(sessions, OUTSIDER, credits=10)
    await add_user(sessions, ADMIN)
    await log_requests(sessions, period_named("today", TZ).start + timedelta(minutes=1),
                       [Logged(USER, "text", [("alpha", None, 123, 777_000)])])
    return Feeder(make_dispatcher(settings, sessions), bot)


async def _ledger_rows(sessions: Sessions) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def _assert_refused_only(fake: FakeTelegram, chat: int, sent_before: int, refusal: str) -> None:
    new = fake.messages(chat)[sent_before:]
    assert [m.media_kind for m in new] == [None], "exactly one plain message"
    assert new[0].plain == refusal
    assert not re.search(r"\$|\d", new[0].plain), "no figure of any kind"


async def test_a_user_not_in_admin_ids_gets_one_flat_refusal(fake: FakeTelegram, feed: Feeder,
                                                             sessions: Sessions) -> None:
    ledger = await _ledger_rows(sessions)
    for command in ADMIN_COMMANDS:
        for args in ARGUMENTS:
            before = len(fake.messages(OUTSIDER))
            await feed.command(OUTSIDER, f"/{command}{args}")
            _assert_refused_only(fake, OUTSIDER, before, REFUSAL_EN)
    assert not fake.messages(USER), "a refused /grant must not notify anyone"
    assert not fake.messages(ADMIN)
    assert await _ledger_rows(sessions) == ledger, "a refused /grant must not move credits"


async def test_the_refusal_speaks_the_users_language(fake: FakeTelegram, feed: Feeder) -> None:
    await feed.command(OUTSIDER, "/stats", language="ru")
    _assert_refused_only(fake, OUTSIDER, 0, REFUSAL_RU)


async def test_an_admin_in_a_group_gets_no_data_there(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    group = -100777
    ledger = await _ledger_rows(sessions)
    for command in ADMIN_COMMANDS:
        for args in ARGUMENTS:
            before = len(fake.messages(group))
            await feed.command(ADMIN, f"/{command}{args}", chat_id=group, chat_type="supergroup")
            _assert_refused_only(fake, group, before, REFUSAL_EN)
    assert not fake.messages(ADMIN) and not fake.messages(USER)
    assert await _ledger_rows(sessions) == ledger


async def test_an_admin_id_added_later_is_admin_at_once(fake: FakeTelegram, bot: Bot, sessions: Sessions,
                                                        feed: Feeder) -> None:
    await feed.command(OUTSIDER, "/stats")
    assert fake.texts(OUTSIDER)[-1] == REFUSAL_EN
    promoted = Feeder(make_dispatcher(support.make_settings(admin_ids=f"{ADMIN},{OUTSIDER}"), sessions), bot)
    await promoted.command(OUTSIDER, "/stats")
    assert "alpha" in fake.texts(OUTSIDER)[-1] and "$0.7770" in fake.texts(OUTSIDER)[-1]
