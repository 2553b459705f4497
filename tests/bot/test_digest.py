"""The daily digest from a request log with known figures, delivered through the fake Bot API; its schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram import Bot
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.services.digest import JOB_ID, schedule_digest, send_digest
from db.periods import period_named
from providers.errors import ErrorKind
from providers.manager import ProviderManager
from providers.types import Category, GenerationRequest
from tests.bot import admin_support as support
from tests.bot.admin_support import (
    ADMIN,
    ADMIN_RU,
    TZ,
    Logged,
    Sessions,
    add_user,
    log_requests,
    make_settings,
)
from tests.fakes.scripted import ScriptedAdapter, failure, scripted_config
from tests.fakes.telegram import FakeTelegram

# pytest fixtures shared by the admin tests (assigned, not imported, so they are not taken for unused names)
admin_db_template, sessions, fake, bot = support.admin_db_template, support.sessions, support.fake, support.bot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALICE, BOB = 3001, 3002

YESTERDAY = [
    Logged(ALICE, "text", [("alpha", None, 100, 10_000)]),
    Logged(ALICE, "text", [("alpha", None, 200, 20_000)]),
    Logged(BOB, "text", [("alpha", "rate_limited", 50, 0), ("beta", None, 1000, 5_000)]),  # a fallback
    Logged(BOB, "image", [("gamma", "unavailable", 40, 0)], served=False),
    Logged(ALICE, "image", [("gamma", None, 3000, 40_000)]),
]


async def _seed(sessions: Sessions) -> None:
    await add_user(sessions, ADMIN, language="en")
    await add_user(sessions, ADMIN_RU, language="ru")
    await add_user(sessions, ALICE, username="alice")
    await add_user(sessions, BOB, first_name="Bob <b>&")
    yesterday = period_named("yesterday", TZ)
    await log_requests(sessions, yesterday.start + timedelta(hours=3), YESTERDAY)
    # Today's spend must not leak into yesterday's digest
    await log_requests(sessions, yesterday.end + timedelta(minutes=5),
                       [Logged(ALICE, "text", [("alpha", None, 5, 9_990_000)])])


def _everything(fake: FakeTelegram, chat: int) -> str:
    return "\n".join(m.plain for m in fake.messages(chat))


async def test_digest_has_yesterdays_figures_and_a_chart(fake: FakeTelegram, bot: Bot, sessions: Sessions) -> None:
    await _seed(sessions)
    reached = await send_digest(bot, sessions, make_settings())
    assert sorted(reached) == [ADMIN, ADMIN_RU]
    photos = fake.media(ADMIN, "photo")
    assert len(photos) == 1 and photos[0].file is not None
    assert photos[0].file.data.startswith(PNG_MAGIC)
    text = _everything(fake, ADMIN)
    assert "Daily digest" in text
    assert "Requests: 5 (4 served, 1 failed, 0 cancelled). Spend: $0.0750." in text
    assert "Refused before any charge (credits, budget, busy): 0." in text
    assert "Fallback rate: 25%." in text
    for line in ("alpha 3 67% $0.0300", "beta 1 100% $0.0050", "gamma 2 50% $0.0400"):
        assert line in " ".join(text.split()), line
    assert "image/gamma" in text and "text/alpha" in text and "text/beta" in text
    assert "@alice" in text and "Bob <b>&" in text  # a user's name is shown as typed, never as markup
    assert "$9.99" not in text and "9.99" not in text


async def test_each_admin_gets_it_in_their_language(fake: FakeTelegram, bot: Bot, sessions: Sessions) -> None:
    await _seed(sessions)
    await send_digest(bot, sessions, make_settings())
    assert "Ежедневная сводка" in _everything(fake, ADMIN_RU)
    assert "Ежедневная сводка" not in _everything(fake, ADMIN)


async def test_an_admin_who_blocked_the_bot_does_not_stop_the_others(fake: FakeTelegram, bot: Bot,
                                                                     sessions: Sessions) -> None:
    await _seed(sessions)
    fake.block(ADMIN)
    reached = await send_digest(bot, sessions, make_settings())
    assert reached == [ADMIN_RU]
    assert fake.media(ADMIN_RU, "photo")
    assert not fake.messages(ADMIN)


async def test_flood_control_is_waited_out_without_duplicates(fake: FakeTelegram, bot: Bot,
                                                              sessions: Sessions) -> None:
    await _seed(sessions)
    fake.rate_limit("sendPhoto", times=1, retry_after=1)
    await send_digest(bot, sessions, make_settings(), chat_ids=[ADMIN])
    assert len(fake.media(ADMIN, "photo")) == 1


async def test_an_empty_day_still_sends_a_digest(fake: FakeTelegram, bot: Bot, sessions: Sessions) -> None:
    await send_digest(bot, sessions, make_settings(), chat_ids=[ADMIN])
    [photo] = fake.media(ADMIN, "photo")
    assert photo.file is not None and photo.file.data.startswith(PNG_MAGIC)
    assert "No requests in this period." in _everything(fake, ADMIN)


async def test_a_long_digest_goes_as_photo_then_messages_within_limits(fake: FakeTelegram, bot: Bot,
                                                                      sessions: Sessions) -> None:
    await add_user(sessions, ALICE, username="alice", credits=100)
    yesterday = period_named("yesterday", TZ)
    many = [Logged(ALICE, "text", [(f"provider-{n:02d}", None, 100 + n, 1_000 * n)]) for n in range(40)]
    await log_requests(sessions, yesterday.start + timedelta(hours=1), many)
    await send_digest(bot, sessions, make_settings(), chat_ids=[ADMIN])
    sent = fake.messages(ADMIN)
    assert sent[0].media_kind == "photo" and len(sent) > 1  # the fake enforces 1024 / 4096 itself
    assert all(f"provider-{n:02d}" in _everything(fake, ADMIN) for n in range(40))


def test_scheduled_daily_at_digest_time_in_the_timezone() -> None:
    scheduler = AsyncIOScheduler()
    settings = make_settings(digest_time="09:30", timezone="America/New_York")
    schedule_digest(scheduler, bot=None, sessions=None, settings=settings)  # type: ignore[arg-type]
    schedule_digest(scheduler, bot=None, sessions=None, settings=settings)  # type: ignore[arg-type]
    [job] = scheduler.get_jobs()
    assert job.id == JOB_ID and job.func is send_digest
    assert isinstance(job.trigger, CronTrigger)
    zone = ZoneInfo("America/New_York")
    assert str(job.trigger.timezone) == "America/New_York"
    winter = job.trigger.get_next_fire_time(None, datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    summer = job.trigger.get_next_fire_time(None, datetime(2026, 7, 10, 12, 0, tzinfo=UTC))
    assert winter.astimezone(zone).replace(tzinfo=None) == datetime(2026, 1, 10, 9, 30)
    assert summer.astimezone(zone).replace(tzinfo=None) == datetime(2026, 7, 10, 9, 30)
    assert winter.astimezone(UTC).hour == 14 and summer.astimezone(UTC).hour == 13  # DST followed
    assert job.kwargs["settings"] is settings


async def test_a_provider_parked_now_is_flagged(fake: FakeTelegram, bot: Bot, sessions: Sessions) -> None:
    await _seed(sessions)
    manager = ProviderManager(scripted_config(["alpha", "beta", "off"], disabled=["off"]),
                              registry={"scripted": ScriptedAdapter})
    try:
        adapter = manager.adapters["alpha"]
        assert isinstance(adapter, ScriptedAdapter)
        adapter.script.append(failure(ErrorKind.QUOTA_EXHAUSTED, status=402))
        await manager.generate(GenerationRequest(Category.TEXT, prompt="hi"))
        await send_digest(bot, sessions, make_settings(), manager, chat_ids=[ADMIN])
    finally:
        await manager.aclose()
    text = _everything(fake, ADMIN)
    attention = text[text.index("Needs attention now"):]
    assert "alpha: quota_exhausted" in attention and "off: no API key" in attention
    assert "beta" not in attention
