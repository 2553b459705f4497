"""Nobody but ADMIN_IDS, in a private chat, gets any admin data: every command, every argument form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.handlers.admin import ADMIN_COMMANDS
from bot.i18n import Translate
from db.models import LedgerEntry
from db.periods import period_named
from tests.bot.admin_support import ADMIN, TZ, USER, Logged, Sessions, add_user, admin_harness, log_requests
from tests.bot.core_harness import CoreHarness
from tests.fakes.telegram import FakeTelegram

OUTSIDER = 5005
ARGUMENTS = ["", " text", " text 7d", " 30d", f" {USER} 50", f" {USER}", " yesterday", " garbage"]
REFUSAL_EN = Translate("en")("admin.refused")
REFUSAL_RU = Translate("ru")("admin.refused")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with admin_harness(tmp_path) as harness:
        sessions = harness.live.sessions
        await add_user(sessions, USER, username="carol", credits=10)
        await add_user(sessions, OUTSIDER, credits=10)
        await add_user(sessions, ADMIN)
        await log_requests(sessions, period_named("today", TZ).start + timedelta(minutes=1),
                           [Logged(USER, "text", [("alpha", None, 123, 777_000)])])
        yield harness


async def _ledger_rows(sessions: Sessions) -> int:
    async with sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def _assert_refused_only(fake: FakeTelegram, chat: int, sent_before: int, refusal: str) -> None:
    new = fake.messages(chat)[sent_before:]
    assert [m.media_kind for m in new] == [None], "exactly one plain message"
    assert new[0].plain == refusal
    assert not re.search(r"\$|\d", new[0].plain), "no figure of any kind"


async def test_a_user_not_in_admin_ids_gets_one_flat_refusal(h: CoreHarness) -> None:
    ledger = await _ledger_rows(h.live.sessions)
    for command in ADMIN_COMMANDS:
        for args in ARGUMENTS:
            before = len(h.tg.messages(OUTSIDER))
            await h.say(OUTSIDER, f"/{command}{args}")
            _assert_refused_only(h.tg, OUTSIDER, before, REFUSAL_EN)
    assert not h.tg.messages(USER), "a refused /grant must not notify anyone"
    assert not h.tg.messages(ADMIN)
    assert await _ledger_rows(h.live.sessions) == ledger, "a refused /grant must not move credits"


async def test_the_refusal_speaks_the_users_language(h: CoreHarness) -> None:
    await h.say(OUTSIDER, "/stats", language_code="ru")
    _assert_refused_only(h.tg, OUTSIDER, 0, REFUSAL_RU)


async def test_an_admin_in_a_group_gets_no_data_there(h: CoreHarness) -> None:
    group = -100777
    ledger = await _ledger_rows(h.live.sessions)
    for command in ADMIN_COMMANDS:
        for args in ARGUMENTS:
            before = len(h.tg.messages(group))
            await h.say_in_group(ADMIN, group, f"/{command}{args}")
            _assert_refused_only(h.tg, group, before, REFUSAL_EN)
    assert not h.tg.messages(ADMIN) and not h.tg.messages(USER)
    assert await _ledger_rows(h.live.sessions) == ledger


async def test_an_admin_id_added_later_is_admin_at_once(h: CoreHarness) -> None:
    await h.say(OUTSIDER, "/stats")
    assert h.tg.texts(OUTSIDER)[-1] == REFUSAL_EN
    # ADMIN_IDS changed and the bot restarted: the same database, nothing else marks the user an admin
    h.settings = h.settings.model_copy(update={"admin_ids": frozenset({ADMIN, OUTSIDER})})
    await h.boot()
    await h.say(OUTSIDER, "/stats")
    assert "alpha" in h.tg.texts(OUTSIDER)[-1] and "$0.7770" in h.tg.texts(OUTSIDER)[-1]
