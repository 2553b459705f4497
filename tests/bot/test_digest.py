"""The daily digest from a request log with known figures, delivered through the fake Bot API; its schedule."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.services.digest import JOB_ID, schedule_digest, send_digest
from db.periods import period_named
from providers.types import Category, GenerationRequest
from tests.bot import admin_support as support
from tests.bot.admin_support import ADMIN, ADMIN_RU, TZ, Logged, Sessions, add_user, admin_harness, log_requests
from tests.bot.core_harness import CoreHarness, eventually
from tests.fakes.telegram import FakeTelegram

h = support.h  # the app as `python -m bot` builds it (assigned, not imported: not taken for an unused name)

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


async def _send(h: CoreHarness, chat_ids: Iterable[int] | None = None) -> list[int]:
    """What the scheduled job does: send_digest with the app's own bot, database, settings and manager."""
    app = h.live
    return await send_digest(app.bot, app.sessions, app.settings, app.manager, chat_ids=chat_ids)


async def test_digest_has_yesterdays_figures_and_a_chart(h: CoreHarness) -> None:
    await _seed(h.live.sessions)
    reached = await _send(h)
    assert sorted(reached) == [ADMIN, ADMIN_RU]
    photos = h.tg.media(ADMIN, "photo")
    assert len(photos) == 1 and photos[0].file is not None
    assert photos[0].file.data.startswith(PNG_MAGIC)
    text = _everything(h.tg, ADMIN)
    assert "Daily digest" in text
    assert "Requests: 5 (4 served, 1 failed, 0 cancelled). Spend: $0.0750." in text
    assert "Refused before any charge (credits, budget, busy): 0." in text
    assert "Fallback rate: 25%." in text
    for line in ("alpha 3 67% $0.0300", "beta 1 100% $0.0050", "gamma 2 50% $0.0400"):
        assert line in " ".join(text.split()), line
    assert "image/gamma" in text and "text/alpha" in text and "text/beta" in text
    assert "@alice" in text and "Bob <b>&" in text  # a user's name is shown as typed, never as markup
    assert "$9.99" not in text and "9.99" not in text


async def test_each_admin_gets_it_in_their_language(h: CoreHarness) -> None:
    await _seed(h.live.sessions)
    await _send(h)
    assert "Ежедневная сводка" in _everything(h.tg, ADMIN_RU)
    assert "Ежедневная сводка" not in _everything(h.tg, ADMIN)


async def test_an_admin_who_blocked_the_bot_does_not_stop_the_others(h: CoreHarness) -> None:
    await _seed(h.live.sessions)
    h.tg.block(ADMIN)
    reached = await _send(h)
    assert reached == [ADMIN_RU]
    assert h.tg.media(ADMIN_RU, "photo")
    assert not h.tg.messages(ADMIN)


async def test_flood_control_is_waited_out_without_duplicates(h: CoreHarness) -> None:
    await _seed(h.live.sessions)
    h.tg.rate_limit("sendPhoto", times=1, retry_after=1)
    await _send(h, [ADMIN])
    assert len(h.tg.media(ADMIN, "photo")) == 1


async def test_an_empty_day_still_sends_a_digest(h: CoreHarness) -> None:
    await _send(h, [ADMIN])
    [photo] = h.tg.media(ADMIN, "photo")
    assert photo.file is not None and photo.file.data.startswith(PNG_MAGIC)
    assert "No requests in this period." in _everything(h.tg, ADMIN)


async def test_a_long_digest_goes_as_photo_then_messages_within_limits(h: CoreHarness) -> None:
    await add_user(h.live.sessions, ALICE, username="alice", credits=100)
    yesterday = period_named("yesterday", TZ)
    many = [Logged(ALICE, "text", [(f"provider-{n:02d}", None, 100 + n, 1_000 * n)]) for n in range(40)]
    await log_requests(h.live.sessions, yesterday.start + timedelta(hours=1), many)
    await _send(h, [ADMIN])
    sent = h.tg.messages(ADMIN)
    assert sent[0].media_kind == "photo" and len(sent) > 1  # the fake enforces 1024 / 4096 itself
    assert all(f"provider-{n:02d}" in _everything(h.tg, ADMIN) for n in range(40))


async def test_scheduled_daily_at_digest_time_in_the_timezone(tmp_path: Path) -> None:
    async with admin_harness(tmp_path, digest_time="09:30", timezone="America/New_York") as h:
        app = h.live
        schedule_digest(app.scheduler, app.bot, app.sessions, app.settings, app.manager)  # build_app did it once
        [job] = [j for j in app.scheduler.get_jobs() if j.func is send_digest]
    assert job.id == JOB_ID
    assert isinstance(job.trigger, CronTrigger)
    zone = ZoneInfo("America/New_York")
    assert str(job.trigger.timezone) == "America/New_York"
    winter = job.trigger.get_next_fire_time(None, datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    summer = job.trigger.get_next_fire_time(None, datetime(2026, 7, 10, 12, 0, tzinfo=UTC))
    assert winter.astimezone(zone).replace(tzinfo=None) == datetime(2026, 1, 10, 9, 30)
    assert summer.astimezone(zone).replace(tzinfo=None) == datetime(2026, 7, 10, 9, 30)
    assert winter.astimezone(UTC).hour == 14 and summer.astimezone(UTC).hour == 13  # DST followed
    assert job.kwargs["settings"] is h.settings and job.kwargs["manager"] is app.manager


async def test_a_provider_parked_now_is_flagged(tmp_path: Path) -> None:
    async with admin_harness(tmp_path, missing_keys={"REPLICATE_API_KEY"}) as h:
        await _seed(h.live.sessions)
        h.first.fail_next(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                          "code": "insufficient_quota"}}, path_contains="/chat/completions")
        await h.live.manager.generate(GenerationRequest(Category.TEXT, prompt="hi"))  # served by the fallback
        await eventually(lambda: h.tg.texts(ADMIN))  # the quota alert, before the digest
        await _send(h, [ADMIN])
        text = _everything(h.tg, ADMIN)
    attention = text[text.index("Needs attention now"):]
    assert "first: quota_exhausted" in attention and "replicate: no API key" in attention
    assert "second" not in attention
