"""Stats for /stats, /cost, /recommended, /balance, the digest and the CSV export, read from the rollups.

A period is read as whole UTC hours (see `db/periods.py`): whole UTC days from the daily rollup rows, the
hours at its edges from the hourly ones, so a 30-day query sums a few thousand rows whatever the traffic.
Stats count finished requests; a request still running is counted once it closes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, case, false, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CLOSED_STATUSES, Request, User
from db.periods import (
    DAY_S,
    HOUR_S,
    Period,
    period_between,
    period_named,
    split_hours,
    user_cover,
    utcnow,
)
from db.repo.stats_types import (
    Digest,
    ProviderStats,
    RequestTotals,
    UserSpend,
    UserUsage,
    by_cost,
    merge_sums,
    pick_recommended,
    provider_stats_from,
)
from db.rollup_tables import (
    DAILY,
    HOURLY,
    PROVIDER_COUNTERS,
    REQUEST_COUNTERS,
    provider_rollups,
    request_rollups,
    user_rollups,
)

__all__ = [
    "Digest", "Period", "ProviderStats", "RequestTotals", "UserSpend", "UserUsage", "cost_comparison",
    "digest", "export_rows", "fallback_rate", "period_between", "period_named", "provider_stats",
    "recommended", "request_totals", "top_users", "user_usage",
]


def _hour(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * HOUR_S, UTC)


def _span(table: Table, period: Period) -> ColumnElement[bool]:
    """The rollup rows that tile the period: daily rows for whole UTC days, hourly rows for the rest."""
    split = split_hours(*period.hours())
    c = table.c
    parts = [and_(c.grain == HOURLY, c.start >= a * HOUR_S, c.start < b * HOUR_S) for a, b in split.edges]
    if split.day_from < split.day_to:
        parts.append(and_(c.grain == DAILY, c.start >= split.day_from * DAY_S, c.start < split.day_to * DAY_S))
    return or_(*parts) if parts else false()


async def _provider_sums(
    session: AsyncSession, period: Period, category: str | None, per_category: bool
) -> list[tuple[str, str | None, dict[str, int]]]:
    c = provider_rollups.c
    keys = [c.provider, c.category] if per_category else [c.provider]
    query = select(*keys, *[func.sum(c[name]) for name in PROVIDER_COUNTERS]).where(
        _span(provider_rollups, period)).group_by(*keys)
    if category is not None:
        query = query.where(c.category == str(category))
    result = []
    for row in (await session.execute(query)).all():
        sums = {name: int(value or 0) for name, value in zip(PROVIDER_COUNTERS, row[len(keys):], strict=True)}
        result.append((row[0], row[1] if per_category else category, sums))
    return result


async def provider_stats(
    session: AsyncSession, period: Period, category: str | None = None
) -> list[ProviderStats]:
    """Per provider (in one category, or all together), most attempts first."""
    rows = await _provider_sums(session, period, None if category is None else str(category), False)
    stats = [provider_stats_from(provider, cat, sums) for provider, cat, sums in rows]
    return sorted(stats, key=lambda s: (-s.attempts, s.provider))


async def cost_comparison(session: AsyncSession, period: Period, category: str) -> list[ProviderStats]:
    """Providers of a category that served anything, by average cost per result, cheapest first."""
    return by_cost(await provider_stats(session, period, category))


async def recommended(
    session: AsyncSession, period: Period, category: str, min_attempts: int = 20
) -> ProviderStats | None:
    return pick_recommended(await provider_stats(session, period, category), min_attempts)


async def _request_sums(session: AsyncSession, period: Period, category: str | None) -> dict[str, RequestTotals]:
    c = request_rollups.c
    query = select(c.category, *[func.sum(c[name]) for name in REQUEST_COUNTERS]).where(
        _span(request_rollups, period)).group_by(c.category)
    if category is not None:
        query = query.where(c.category == str(category))
    return {
        row[0]: RequestTotals(*[int(v or 0) for v in row[1:]]) for row in (await session.execute(query)).all()
    }


def _add_totals(totals: list[RequestTotals]) -> RequestTotals:
    return RequestTotals(*[sum(getattr(t, name) for t in totals) for name in REQUEST_COUNTERS])


async def request_totals(session: AsyncSession, period: Period, category: str | None = None) -> RequestTotals:
    return _add_totals(list((await _request_sums(session, period, category)).values()))


async def fallback_rate(session: AsyncSession, period: Period, category: str | None = None) -> float:
    """Share of served requests not served by the first provider of their route (0.0 if none served)."""
    return (await request_totals(session, period, category)).fallback_rate


def _user_parts(period: Period) -> list[Select[int, int, int, int]]:
    """One SELECT per rollup block (each a primary-key range; an OR of them made SQLite build a rowset
    first, a third slower), and one per raw edge, already summed per user."""
    blocks, edges = user_cover(*period.hours())
    u = user_rollups.c
    parts: list[Select[int, int, int, int]] = [
        select(u.user_id, u.requests, u.credits, u.cost_micros).where(u.grain_hours == grain, u.start_hour == start)
        for grain, start in blocks
    ]
    for a, b in edges:
        # Hours no block fits come from the covering index of the raw requests. `+ 0`: grouping on the
        # bare column tempts SQLite into a skip-scan of (user_id, created_at), four times slower.
        user = (Request.user_id + 0).label("user_id")
        edge = select(
            user, func.count().label("requests"),
            func.sum(Request.credits_charged - Request.credits_refunded).label("credits"),
            func.sum(Request.cost_micros).label("cost_micros"),
        ).where(Request.created_at >= _hour(a), Request.created_at < _hour(b),
                Request.status.in_(CLOSED_STATUSES)).group_by(user)
        parts.append(edge)
    return parts


async def top_users(session: AsyncSession, period: Period, limit: int = 10) -> list[UserSpend]:
    """Users by cost in the period (then credits), biggest first."""
    parts = _user_parts(period)
    if not parts:
        return []
    rows = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()
    cost = func.sum(rows.c.cost_micros)
    credits = func.sum(rows.c.credits)
    top = (await session.execute(
        select(rows.c.user_id, func.sum(rows.c.requests), credits, cost).group_by(rows.c.user_id)
        .order_by(cost.desc(), credits.desc(), rows.c.user_id).limit(limit)
    )).all()
    names = {
        r.id: r for r in (await session.execute(
            select(User.id, User.username, User.first_name).where(User.id.in_([t[0] for t in top]))
        )).all()
    }
    return [
        UserSpend(tg_id=uid, username=names[uid].username if uid in names else None,
                  first_name=names[uid].first_name if uid in names else None,
                  requests=int(n), credits=int(cr or 0), cost_micros=int(co or 0))
        for uid, n, cr, co in top
    ]


async def user_usage(
    session: AsyncSession, tg_id: int, tz: str | tzinfo = "UTC", now: datetime | None = None
) -> UserUsage | None:
    """Credits left, and requests, net credits and cost today and this month in `tz` (in-flight included;
    refusals, which never ran, are not requests here)."""
    now = now or utcnow()
    credits_left = await session.scalar(select(User.credits).where(User.id == tg_id))
    if credits_left is None:
        return None
    day, month = period_named("today", tz, now), period_named("month", tz, now)
    today = (Request.created_at >= day.start) & (Request.created_at < day.end)
    net = Request.credits_charged - Request.credits_refunded
    row = (await session.execute(
        select(func.sum(case((today, 1), else_=0)), func.sum(case((today, net), else_=0)),
               func.sum(case((today, Request.cost_micros), else_=0)), func.count(), func.sum(net),
               func.sum(Request.cost_micros))
        .where(Request.user_id == tg_id, Request.created_at >= month.start, Request.created_at < month.end,
               Request.status != "refused")
    )).one()
    n_day, cr_day, co_day, n_month, cr_month, co_month = (int(v or 0) for v in row)
    return UserUsage(tg_id, int(credits_left), n_day, cr_day, co_day, n_month, cr_month, co_month)


def _provider_name(stats: ProviderStats | None) -> str | None:
    return None if stats is None else stats.provider


async def digest(
    session: AsyncSession, period: Period, *, top: int = 10, min_attempts: int = 20
) -> Digest:
    """Everything the daily digest shows, from four queries."""
    per_category = await _provider_sums(session, period, None, True)
    by_category: dict[str, list[ProviderStats]] = {}
    combined: dict[str, dict[str, int]] = {}
    for provider, category, sums in per_category:
        by_category.setdefault(str(category), []).append(provider_stats_from(provider, category, sums))
        merge_sums(combined.setdefault(provider, {}), sums)
    providers = sorted((provider_stats_from(p, None, s) for p, s in combined.items()),
                       key=lambda s: (-s.attempts, s.provider))
    totals_by_category = await _request_sums(session, period, None)
    return Digest(
        period=period,
        totals=_add_totals(list(totals_by_category.values())),
        totals_by_category=totals_by_category,
        providers=tuple(providers),
        by_category={cat: tuple(by_cost(stats)) for cat, stats in sorted(by_category.items())},
        recommended={
            cat: _provider_name(pick_recommended(stats, min_attempts)) for cat, stats in sorted(by_category.items())
        },
        top_users=tuple(await top_users(session, period, top)),
    )


async def export_rows(session: AsyncSession, period: Period) -> AsyncIterator[dict[str, Any]]:
    """One dict per request created in the period (oldest first), streamed: `async for row in ...`."""
    start, end = period.hour_bounds()
    r = Request
    query = (
        select(r.id, r.created_at, r.finished_at, r.user_id, r.label, r.category, r.status,
               r.route_first_provider, r.provider, r.model, r.fallback, r.cost_micros, r.credits_charged,
               r.credits_refunded, r.latency_ms, r.error_kind)
        .where(r.created_at >= start, r.created_at < end).order_by(r.created_at, r.id)
    )
    result = await session.stream(query.execution_options(yield_per=2000))
    async for row in result.mappings():
        item = dict(row)
        item["cost_usd"] = f"{item['cost_micros'] / 1_000_000:.6f}"
        yield item
