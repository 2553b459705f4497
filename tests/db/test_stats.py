"""Stats on a small, hand-checked set of requests: per provider, fallback, cost, recommended, users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.periods import period_between, period_named
from db.repo.lifecycle import close_failed, close_served, record_attempts
from db.repo.records import AttemptRecord, ServedRecord
from db.repo.stats import (
    cost_comparison,
    digest,
    export_rows,
    fallback_rate,
    provider_stats,
    recommended,
    request_totals,
    top_users,
    user_usage,
)
from db.rollup_tables import bucket_bounds, latency_bucket
from tests.db.support import OWNER, make_user, reserve

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)

# (user, credits, [(provider, kind, latency, cost)], outcome); the route's first provider is always alpha
REQUESTS = [
    (1, 1, [("alpha", None, 100, 10)], "served"),
    (1, 1, [("alpha", None, 200, 20)], "served"),
    (2, 2, [("alpha", "rate_limited", 50, 0), ("beta", None, 1000, 5)], "served"),
    (2, 2, [("alpha", None, 300, 30)], "served"),
    (3, 3, [("beta", "unavailable", 40, 0)], "failed"),
]


async def _log(s: AsyncSession, start: datetime, requests: list[tuple[int, int, list[tuple[str, str | None, int, int]],
                                                                       str]]) -> None:
    for n, (user, credits, attempts, outcome) in enumerate(requests):
        at = start + timedelta(minutes=n)
        rid = (await reserve(s, user, credits, now=at, route_first="alpha")).request_id
        assert rid is not None
        await record_attempts(s, rid, [AttemptRecord(provider, "m", "text", order, kind, 200, latency, cost,
                                                     started_at=at)
                                       for order, (provider, kind, latency, cost) in enumerate(attempts)])
        provider, _, latency, cost = attempts[-1]
        if outcome == "served":
            assert await close_served(s, rid, OWNER, ServedRecord(provider, "m", cost, latency))
        else:
            assert await close_failed(s, rid, OWNER, error_kind="unavailable", now=at) is not None


async def _seed(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        for user in (1, 2, 3):
            await make_user(s, user, credits=50)
        await _log(s, NOW - timedelta(hours=2), REQUESTS)


async def test_provider_stats_fallback_and_cost(sessions: Sessions) -> None:
    await _seed(sessions)
    today = period_named("today", "UTC", now=NOW)
    async with sessions() as s:
        stats = {p.provider: p for p in await provider_stats(s, today, "text")}
        ranking = [p.provider for p in await cost_comparison(s, today, "text")]
        rate = await fallback_rate(s, today)
        totals = await request_totals(s, today)
        nothing = await provider_stats(s, period_named("yesterday", "UTC", now=NOW))
        other_category = await provider_stats(s, today, "image")
    alpha, beta = stats["alpha"], stats["beta"]
    assert (alpha.attempts, alpha.successes, dict(alpha.failures), alpha.cost_micros) == (4, 3, {"rate_limited": 1}, 60)
    assert (alpha.success_rate, alpha.avg_cost_micros, alpha.avg_latency_ms, alpha.served) == (0.75, 20, 200.0, 3)
    low, high = bucket_bounds(latency_bucket(300))  # the nearest-rank p95 is 300 ms
    assert alpha.p95_latency_ms is not None and low <= alpha.p95_latency_ms <= high
    assert (beta.attempts, beta.successes, dict(beta.failures), beta.served, beta.fallbacks) == (
        2, 1, {"unavailable": 1}, 1, 1)
    assert ranking == ["beta", "alpha"]
    assert rate == 0.25
    assert (totals.requests, totals.served, totals.failed, totals.credits_charged, totals.credits_refunded,
            totals.cost_micros) == (5, 4, 1, 9, 3, 65)
    assert nothing == [] and other_category == []


async def test_recommended_needs_more_than_80_percent_and_enough_attempts(sessions: Sessions) -> None:
    await _seed(sessions)
    today = period_named("today", "UTC", now=NOW)
    async with sessions() as s, s.begin():
        assert await recommended(s, today, "text", min_attempts=1) is None  # alpha 75%, beta 50%
        await _log(s, NOW - timedelta(hours=1), [(1, 1, [("alpha", None, 100, 10)], "served")])
        assert (await provider_stats(s, today, "text"))[0].success_rate == 0.8
        assert await recommended(s, today, "text", min_attempts=1) is None  # exactly 80% is not above it
        await _log(s, NOW - timedelta(hours=1), [(1, 1, [("alpha", None, 100, 10)], "served")])
        best = await recommended(s, today, "text", min_attempts=6)
        assert best is not None and best.provider == "alpha"
        assert await recommended(s, today, "text", min_attempts=7) is None


async def test_top_users_user_usage_digest_and_export(sessions: Sessions) -> None:
    await _seed(sessions)
    today = period_named("today", "UTC", now=NOW)
    async with sessions() as s:
        top = await top_users(s, today, limit=2)
        usage = await user_usage(s, 2, "UTC", now=NOW)
        unknown = await user_usage(s, 404, "UTC", now=NOW)
        report = await digest(s, today, min_attempts=1)
        rows = [row async for row in export_rows(s, today)]
    assert [(u.tg_id, u.username, u.requests, u.credits, u.cost_micros) for u in top] == [
        (2, "u2", 2, 4, 35), (1, "u1", 2, 2, 30)]
    assert usage is not None and unknown is None
    assert (usage.credits_left, usage.requests_today, usage.credits_today, usage.cost_today_micros,
            usage.requests_month, usage.credits_month) == (46, 2, 4, 35, 2, 4)
    assert report.totals.requests == 5 and report.fallback_rate == 0.25
    assert [p.provider for p in report.providers] == ["alpha", "beta"]
    assert [p.provider for p in report.by_category["text"]] == ["beta", "alpha"]
    assert report.recommended == {"text": None} and report.top_users[0].tg_id == 2
    assert [r["status"] for r in rows] == ["served"] * 4 + ["failed"]
    assert rows[2]["provider"] == "beta" and rows[2]["fallback"] and rows[0]["cost_usd"] == "0.000010"


async def test_a_day_in_new_york_across_the_dst_switch(sessions: Sessions) -> None:
    # 2024-03-10 in New York starts 05:00 UTC (EST) and ends 04:00 UTC next day (EDT): 23 hours
    period = period_named("today", "America/New_York", now=NOW)
    assert (period.start, period.end) == (datetime(2024, 3, 10, 5, tzinfo=UTC), datetime(2024, 3, 11, 4, tzinfo=UTC))
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=50)
        for at in ("2024-03-10T04:59", "2024-03-10T05:00", "2024-03-11T03:59", "2024-03-11T04:00"):
            await _log(s, datetime.fromisoformat(at).replace(tzinfo=UTC), [(1, 1, [("alpha", None, 10, 1)], "served")])
        totals = await request_totals(s, period)
        (alpha,) = await provider_stats(s, period)
        (user,) = await top_users(s, period)
        usage = await user_usage(s, 1, "America/New_York", now=datetime(2024, 3, 11, 3, 59, tzinfo=UTC))
    assert totals.requests == 2 and alpha.attempts == 2 and user.requests == 2
    assert usage is not None and (usage.requests_today, usage.requests_month) == (2, 4)


async def test_half_hour_timezones_read_whole_utc_hours(sessions: Sessions) -> None:
    # Asia/Kolkata is UTC+05:30: "today" is 18:30 UTC the day before; the rollups read from 18:00 (documented)
    period = period_named("today", "Asia/Kolkata", now=NOW)
    assert period.start == datetime(2024, 3, 9, 18, 30, tzinfo=UTC)
    assert period.hour_bounds() == (datetime(2024, 3, 9, 18, tzinfo=UTC), datetime(2024, 3, 10, 18, tzinfo=UTC))
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=50)
        await _log(s, datetime(2024, 3, 9, 18, 10, tzinfo=UTC), [(1, 1, [("alpha", None, 10, 1)], "served")])
        assert (await request_totals(s, period)).requests == 1
        assert [u.requests for u in await top_users(s, period)] == [1]
        # /balance reads raw rows, so its local day is exact
        usage = await user_usage(s, 1, "Asia/Kolkata", now=NOW)
        assert usage is not None and usage.requests_today == 0


async def test_any_range_works_and_open_requests_are_not_counted_yet(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1, credits=50)
        await reserve(s, 1, 1, now=NOW)
        week = period_between(NOW - timedelta(days=7), NOW + timedelta(hours=1))
        assert (await request_totals(s, week)).requests == 0
        assert await top_users(s, week) == []
        usage = await user_usage(s, 1, "UTC", now=NOW)
        assert usage is not None and usage.requests_today == 1  # the user sees what was charged
