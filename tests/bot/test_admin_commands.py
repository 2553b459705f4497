"""Admin commands fed to the app `python -m bot` builds (CoreHarness) against the fake Bot API."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import LedgerEntry
from db.periods import period_named
from db.repo.users import get_user
from providers.types import Category, GenerationRequest
from tests.bot import admin_support as support
from tests.bot.admin_support import ADMIN, TZ, USER, Logged, Sessions, add_user, admin_harness, log_requests
from tests.bot.core_harness import CoreHarness
from tests.fakes.telegram import FakeTelegram

TODAY = [
    Logged(USER, "text", [("alpha", None, 100, 10_000)]),
    Logged(USER, "text", [("alpha", None, 300, 30_000)]),
    Logged(USER, "text", [("alpha", "rate_limited", 50, 0), ("beta", None, 900, 4_000)]),
    Logged(USER, "image", [("gamma", "unavailable", 40, 0)], served=False),
]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with admin_harness(tmp_path) as harness:
        await add_user(harness.live.sessions, ADMIN)
        await add_user(harness.live.sessions, USER, username="carol", credits=10)
        yield harness


async def _seed_today(sessions: Sessions, extra: list[Logged] | None = None) -> None:
    today = period_named("today", TZ)
    await log_requests(sessions, today.start + timedelta(minutes=1), TODAY + (extra or []))


def _squeezed(fake: FakeTelegram, chat: int) -> str:
    return " ".join(" ".join(m.plain for m in fake.messages(chat)).split())


async def test_stats_per_provider_with_failures_and_fallback(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, "/stats")
    text = _squeezed(h.tg, ADMIN)
    assert "Provider stats" in text
    assert "alpha 3 2 1 67%" in text and "beta 1 1 0 100%" in text and "gamma 1 0 1 0%" in text
    assert "alpha $0.0400 $0.0200 200ms" in text
    assert "rate_limited 1" in text and "unavailable 1" in text
    assert "Fallback rate: 33% of 3 served requests (1 not served" in text


async def test_stats_narrowed_to_a_category_and_a_period(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, "/stats 7d image")
    text = _squeezed(h.tg, ADMIN)
    assert "gamma 1 0 1 0%" in text and "alpha" not in text and "last 7 days" in text
    await h.say(ADMIN, "/stats yesterday")
    assert "No requests in this period." in h.tg.texts(ADMIN)[-1]


BAD_ARGUMENTS = [
    ("/stats lastweek", "Unknown category"), ("/stats text 90d", "Unknown period"),
    ("/stats text text", "Unknown period"), ("/cost", "Usage: /cost"), ("/cost 7d", "Usage: /cost"),
    ("/recommended music", "Unknown category"), ("/grant", "Usage: /grant"), ("/grant 12 ten", "Usage: /grant"),
    ("/grant 12 0", "Usage: /grant"), ("/grant 12 99999999", "Usage: /grant"), ("/user bob", "Usage: /user"),
    ("/export text", "Usage: /export"), ("/digest 1y", "Unknown period"),
]


async def test_bad_arguments_get_a_clear_usage(h: CoreHarness) -> None:
    for n, (args, expect) in enumerate(BAD_ARGUMENTS, start=1):
        await h.say(ADMIN, args)
        assert len(h.tg.messages(ADMIN)) == n, args  # one answer, nothing else
        assert expect in h.tg.texts(ADMIN)[-1], args


async def test_cost_ranks_the_cheapest_first(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, "/cost text today")
    text = h.tg.texts(ADMIN)[-1]
    assert text.index("beta") < text.index("alpha")
    assert "$0.0040" in text and "$0.0200" in text


async def test_recommended_needs_enough_attempts(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, "/recommended text")
    assert "Not enough data yet" in h.tg.texts(ADMIN)[-1]
    await add_user(h.live.sessions, USER + 1, credits=100)
    await _seed_today(h.live.sessions, [Logged(USER + 1, "text", [("alpha", None, 100, 20_000)]) for _ in range(25)])
    await h.say(ADMIN, "/recommended text")
    assert "alpha: $0.0200 per request" in _squeezed(h.tg, ADMIN)


async def test_grant_writes_a_ledger_row_and_tells_both(h: CoreHarness) -> None:
    await h.say(ADMIN, f"/grant {USER} 25")
    assert "New balance: 35." in h.tg.texts(ADMIN)[-1]
    assert "You received 25 credits. Your balance: 35." in h.tg.texts(USER)[-1]
    async with h.live.sessions() as s:
        rows = (await s.execute(select(LedgerEntry).where(LedgerEntry.user_id == USER))).scalars().all()
        view = await get_user(s, USER)
    grant = [r for r in rows if r.reason == "admin_grant"]
    assert [(r.delta, r.by_admin) for r in grant] == [(25, ADMIN)]
    assert view is not None and view.credits == 35


async def test_grant_refusals_change_nothing(h: CoreHarness) -> None:
    await h.say(ADMIN, "/grant 424242 5")
    assert "has never used the bot" in h.tg.texts(ADMIN)[-1]
    await h.say(ADMIN, f"/grant {USER} -11")
    assert "negative balance (10 now)" in h.tg.texts(ADMIN)[-1]
    async with h.live.sessions() as s:
        view = await get_user(s, USER)
    assert view is not None and view.credits == 10
    assert not h.tg.texts(USER)


async def test_grant_to_a_user_who_blocked_the_bot_still_counts(h: CoreHarness) -> None:
    h.tg.block(USER)
    await h.say(ADMIN, f"/grant {USER} 5")
    assert "New balance: 15." in h.tg.texts(ADMIN)[-1] and "could not be told" in h.tg.texts(ADMIN)[-1]


async def test_user_card_shows_balance_and_usage(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, f"/user {USER}")
    text = h.tg.texts(ADMIN)[-1]
    assert "@carol" in text and str(USER) in text
    assert "Balance: 7 credits." in text  # 10 free, 4 charged, 1 refunded
    assert "Today: 4 requests, 3 credits, $0.0440." in text
    await h.say(ADMIN, "/user 99")
    assert "has never used the bot" in h.tg.texts(ADMIN)[-1]


async def test_export_sends_the_request_log_as_csv(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, "/export")
    [doc] = h.tg.media(ADMIN, "document")
    assert doc.file is not None and doc.file.filename.endswith(".csv")
    assert "4 rows" in doc.plain
    table = list(csv.DictReader(io.StringIO(doc.file.data.decode("utf-8-sig"))))
    assert len(table) == 4
    for column in ("id", "created_at", "user_id", "category", "status", "provider", "cost_usd", "error_kind"):
        assert column in table[0], column
    assert [r["provider"] for r in table] == ["alpha", "alpha", "beta", ""]
    assert [r["status"] for r in table] == ["served", "served", "served", "failed"]
    assert table[1]["cost_usd"] == "0.030000"


async def test_export_of_an_empty_period_says_so(h: CoreHarness) -> None:
    await h.say(ADMIN, "/export yesterday")
    assert not h.tg.media(ADMIN, "document")
    assert "no requests" in h.tg.texts(ADMIN)[-1]


async def test_digest_now_goes_to_the_asking_admin_only(h: CoreHarness) -> None:
    await _seed_today(h.live.sessions)
    await h.say(ADMIN, "/digest today")
    [photo] = h.tg.media(ADMIN, "photo")
    assert photo.file is not None and photo.file.data.startswith(b"\x89PNG")
    assert "Requests: 4 (3 served, 1 failed, 0 cancelled)" in _squeezed(h.tg, ADMIN)
    assert not h.tg.messages(support.ADMIN_RU)


async def test_providers_shows_cooldowns_and_disabled(tmp_path: Path) -> None:
    async with admin_harness(tmp_path, missing_keys={"REPLICATE_API_KEY"}) as h:
        h.first.fail_next(429, {"error": {"message": "Rate limit reached", "type": "requests",
                                          "code": "rate_limit_exceeded"}},
                          headers={"retry-after": "600"}, path_contains="/chat/completions")
        await h.live.manager.generate(GenerationRequest(Category.TEXT, prompt="hi"))  # served by the fallback
        await h.say(ADMIN, "/providers")
        text = _squeezed(h.tg, ADMIN)
    assert "text: cooling down until" in text and "(in 10m), rate_limited" in text
    assert "replicate: disabled, no API key (set REPLICATE_API_TOKEN)" in text
    assert "second all categories healthy" in text
