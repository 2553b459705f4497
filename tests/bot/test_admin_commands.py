"""Admin commands through dp.feed_update (real middlewares and routers) against the fake Bot API."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from aiogram import Bot
from sqlalchemy import select

from bot.settings import Settings
from db.models import LedgerEntry
from db.periods import period_named
from db.repo.users import get_user
from providers.errors import ErrorKind
from providers.manager import ProviderManager
from providers.types import Category, GenerationRequest
from tests.bot import admin_support as support
from tests.bot.admin_support import ADMIN, TZ, USER, Feeder, Logged, Sessions, add_user, log_requests, make_dispatcher
from tests.fakes.scripted import ScriptedAdapter, failure, scripted_config
from tests.fakes.telegram import FakeTelegram

# pytest fixtures shared by the admin tests (assigned, not imported, so they are not taken for unused names)
admin_db_template, sessions, fake, bot = support.admin_db_template, support.sessions, support.fake, support.bot

TODAY = [
    Logged(USER, "text", [("alpha", None, 100, 10_000)]),
    Logged(USER, "text", [("alpha", None, 300, 30_000)]),
    Logged(USER, "text", [("alpha", "rate_limited", 50, 0), ("beta", None, 900, 4_000)]),
    Logged(USER, "image", [("gamma", "unavailable", 40, 0)], served=False),
]


@pytest.fixture
def settings() -> Settings:
    return support.make_settings()


@pytest.fixture
async def feed(bot: Bot, sessions: Sessions, settings: Settings) -> Feeder:
    await add_user(sessions, ADMIN)
    await add_user(sessions, USER, username="carol", credits=10)
    return Feeder(make_dispatcher(settings, sessions), bot)


async def _seed_today(sessions: Sessions, extra: list[Logged] | None = None) -> None:
    today = period_named("today", TZ)
    await log_requests(sessions, today.start + timedelta(minutes=1), TODAY + (extra or []))


def _squeezed(fake: FakeTelegram, chat: int) -> str:
    return " ".join(" ".join(m.plain for m in fake.messages(chat)).split())


async def test_stats_per_provider_with_failures_and_fallback(fake: FakeTelegram, feed: Feeder,
                                                             sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, "/stats")
    text = _squeezed(fake, ADMIN)
    assert "Provider stats" in text
    assert "alpha 3 2 1 67%" in text and "beta 1 1 0 100%" in text and "gamma 1 0 1 0%" in text
    assert "alpha $0.0400 $0.0200 200ms" in text
    assert "rate_limited 1" in text and "unavailable 1" in text
    assert "Fallback rate: 33% of 3 served requests (1 not served" in text


async def test_stats_narrowed_to_a_category_and_a_period(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, "/stats 7d image")
    text = _squeezed(fake, ADMIN)
    assert "gamma 1 0 1 0%" in text and "alpha" not in text and "last 7 days" in text
    await feed.command(ADMIN, "/stats yesterday")
    assert "No requests in this period." in fake.texts(ADMIN)[-1]


BAD_ARGUMENTS = [
    ("/stats lastweek", "Unknown category"), ("/stats text 90d", "Unknown period"),
    ("/stats text text", "Unknown period"), ("/cost", "Usage: /cost"), ("/cost 7d", "Usage: /cost"),
    ("/recommended music", "Unknown category"), ("/grant", "Usage: /grant"), ("/grant 12 ten", "Usage: /grant"),
    ("/grant 12 0", "Usage: /grant"), ("/grant 12 99999999", "Usage: /grant"), ("/user bob", "Usage: /user"),
    ("/export text", "Usage: /export"), ("/digest 1y", "Unknown period"),
]


async def test_bad_arguments_get_a_clear_usage(fake: FakeTelegram, feed: Feeder) -> None:
    for n, (args, expect) in enumerate(BAD_ARGUMENTS, start=1):
        await feed.command(ADMIN, args)
        assert len(fake.messages(ADMIN)) == n, args  # one answer, nothing else
        assert expect in fake.texts(ADMIN)[-1], args


async def test_cost_ranks_the_cheapest_first(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, "/cost text today")
    text = fake.texts(ADMIN)[-1]
    assert text.index("beta") < text.index("alpha")
    assert "$0.0040" in text and "$0.0200" in text


async def test_recommended_needs_enough_attempts(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, "/recommended text")
    assert "Not enough data yet" in fake.texts(ADMIN)[-1]
    await add_user(sessions, USER + 1, credits=100)
    await _seed_today(sessions, [Logged(USER + 1, "text", [("alpha", None, 100, 20_000)]) for _ in range(25)])
    await feed.command(ADMIN, "/recommended text")
    assert "alpha: $0.0200 per request" in _squeezed(fake, ADMIN)


async def test_grant_writes_a_ledger_row_and_tells_both(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await feed.command(ADMIN, f"/grant {USER} 25")
    assert "New balance: 35." in fake.texts(ADMIN)[-1]
    assert "You received 25 credits. Your balance: 35." in fake.texts(USER)[-1]
    async with sessions() as s:
        rows = (await s.execute(select(LedgerEntry).where(LedgerEntry.user_id == USER))).scalars().all()
        view = await get_user(s, USER)
    grant = [r for r in rows if r.reason == "admin_grant"]
    assert [(r.delta, r.by_admin) for r in grant] == [(25, ADMIN)]
    assert view is not None and view.credits == 35


async def test_grant_refusals_change_nothing(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await feed.command(ADMIN, "/grant 424242 5")
    assert "has never used the bot" in fake.texts(ADMIN)[-1]
    await feed.command(ADMIN, f"/grant {USER} -11")
    assert "negative balance (10 now)" in fake.texts(ADMIN)[-1]
    async with sessions() as s:
        view = await get_user(s, USER)
    assert view is not None and view.credits == 10
    assert not fake.texts(USER)


async def test_grant_to_a_user_who_blocked_the_bot_still_counts(fake: FakeTelegram, feed: Feeder) -> None:
    fake.block(USER)
    await feed.command(ADMIN, f"/grant {USER} 5")
    assert "New balance: 15." in fake.texts(ADMIN)[-1] and "could not be told" in fake.texts(ADMIN)[-1]


async def test_user_card_shows_balance_and_usage(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, f"/user {USER}")
    text = fake.texts(ADMIN)[-1]
    assert "@carol" in text and str(USER) in text
    assert "Balance: 7 credits." in text  # 10 free, 4 charged, 1 refunded
    assert "Today: 4 requests, 3 credits, $0.0440." in text
    await feed.command(ADMIN, "/user 99")
    assert "has never used the bot" in fake.texts(ADMIN)[-1]


async def test_export_sends_the_request_log_as_csv(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, "/export")
    [doc] = fake.media(ADMIN, "document")
    assert doc.file is not None and doc.file.filename.endswith(".csv")
    assert "4 rows" in doc.plain
    table = list(csv.DictReader(io.StringIO(doc.file.data.decode("utf-8-sig"))))
    assert len(table) == 4
    for column in ("id", "created_at", "user_id", "category", "status", "provider", "cost_usd", "error_kind"):
        assert column in table[0], column
    assert [r["provider"] for r in table] == ["alpha", "alpha", "beta", ""]
    assert [r["status"] for r in table] == ["served", "served", "served", "failed"]
    assert table[1]["cost_usd"] == "0.030000"


async def test_export_of_an_empty_period_says_so(fake: FakeTelegram, feed: Feeder) -> None:
    await feed.command(ADMIN, "/export yesterday")
    assert not fake.media(ADMIN, "document")
    assert "no requests" in fake.texts(ADMIN)[-1]


async def test_digest_now_goes_to_the_asking_admin_only(fake: FakeTelegram, feed: Feeder, sessions: Sessions) -> None:
    await _seed_today(sessions)
    await feed.command(ADMIN, "/digest today")
    [photo] = fake.media(ADMIN, "photo")
    assert photo.file is not None and photo.file.data.startswith(b"\x89PNG")
    assert "Requests: 4 (3 served, 1 failed, 0 cancelled)" in _squeezed(fake, ADMIN)
    assert not fake.messages(support.ADMIN_RU)


async def test_providers_shows_cooldowns_and_disabled(fake: FakeTelegram, bot: Bot, sessions: Sessions,
                                                      settings: Settings) -> None:
    manager = ProviderManager(scripted_config(["alpha", "beta", "gamma"], disabled=["gamma"]),
                              registry={"scripted": ScriptedAdapter})
    try:
        adapter = manager.adapters["alpha"]
        assert isinstance(adapter, ScriptedAdapter)
        adapter.script.append(failure(ErrorKind.RATE_LIMITED, retry_after_s=600, status=429))
        await manager.generate(GenerationRequest(Category.TEXT, prompt="hi"))
        await add_user(sessions, ADMIN)
        await Feeder(make_dispatcher(settings, sessions, manager), bot).command(ADMIN, "/providers")
    finally:
        await manager.aclose()
    text = _squeezed(fake, ADMIN)
    assert "text: cooling down until" in text and "(in 10m), rate_limited" in text
    assert "gamma: disabled, no API key (set GAMMA_API_KEY)" in text
    assert "beta all categories healthy" in text


async def test_providers_without_a_manager(fake: FakeTelegram, feed: Feeder) -> None:
    await feed.command(ADMIN, "/providers")
    assert "not running" in fake.texts(ADMIN)[-1]
