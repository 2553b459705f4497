"""Keeping the rollups (`db/rollup_tables.py`) on write, and rebuilding them from the raw rows.

The write side is called by `db/repo/lifecycle.py` in the caller's transaction, so a rollup never counts
an attempt or a request that was rolled back. `rebuild_rollups` recomputes every rollup from `attempts` and
`requests` in SQL; it repairs a database after a crash of an older version, fills rollups after a bulk
import (the benchmark uses it), and the tests check that it agrees with what the write side kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, insert, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from db.dialect import Db, epoch_seconds_sql, upsert_add
from db.models import CLOSED_STATUSES, TERMINAL_STATUSES, Attempt, Request
from db.periods import DAY_S, HOUR_S, USER_GRAINS_HOURS, epoch_seconds
from db.rollup_tables import (
    BUCKET_COLUMNS,
    DAILY,
    FAILURE_COLUMNS,
    FAILURE_KINDS,
    HOURLY,
    LATENCY_BOUNDS_MS,
    PROVIDER_COUNTERS,
    PROVIDER_KEYS,
    REQUEST_COUNTERS,
    REQUEST_KEYS,
    USER_COUNTERS,
    USER_KEYS,
    failure_column,
    latency_bucket,
    provider_rollups,
    request_rollups,
    user_rollups,
)


def _grains(moment: datetime, key: dict[str, Any], counters: dict[str, int]) -> list[dict[str, Any]]:
    second = epoch_seconds(moment)
    return [
        {"grain": grain, "start": second - second % grain, **key, **counters} for grain in (HOURLY, DAILY)
    ]


def _provider_rows(moment: datetime, provider: str, category: str, counters: dict[str, int]) -> list[dict[str, Any]]:
    # Every row carries every counter, so the rows of several events go in one executemany
    full = dict.fromkeys(PROVIDER_COUNTERS, 0) | counters
    return _grains(moment, {"provider": provider, "category": category}, full)


def attempt_rows(
    *, provider: str, category: str, started_at: datetime, kind: str | None, latency_ms: int, cost_micros: int
) -> list[dict[str, Any]]:
    """Provider rollup rows (hour and day) for one attempt; successes feed the latency figures."""
    counters = {"attempts": 1, "cost_micros": cost_micros}
    if kind is None:
        counters |= {"successes": 1, "latency_ms_sum": latency_ms, BUCKET_COLUMNS[latency_bucket(latency_ms)]: 1}
    else:
        counters[failure_column(kind)] = 1
    return _provider_rows(started_at, provider, category, counters)


def served_rows(*, provider: str, category: str, created_at: datetime, fallback: bool) -> list[dict[str, Any]]:
    """Provider rollup rows for a request served by `provider`, at the hour the request was made."""
    return _provider_rows(created_at, provider, category, {"served": 1, "fallbacks": int(fallback)})


async def add_provider_rows(session: Db, rows: list[dict[str, Any]]) -> None:
    await upsert_add(session, provider_rollups, PROVIDER_KEYS, rows)


async def add_finished_request(
    session: Db, *, user_id: int, category: str, created_at: datetime, status: str,
    fallback: bool, charged: int, refunded: int, cost_micros: int,
) -> None:
    """Count a request that has just been closed (served, failed or canceled), per category and per user."""
    counters = {
        "requests": 1, status: 1, "fallbacks": int(fallback), "credits_charged": charged,
        "credits_refunded": refunded, "cost_micros": cost_micros,
    }
    await upsert_add(session, request_rollups, REQUEST_KEYS, _grains(created_at, {"category": category}, counters))
    hour = epoch_seconds(created_at) // HOUR_S
    user_counters = {"requests": 1, "credits": charged - refunded, "cost_micros": cost_micros}
    user_rows = [
        {"grain_hours": g, "start_hour": hour - hour % g, "user_id": user_id, **user_counters}
        for g in USER_GRAINS_HOURS
    ]
    await upsert_add(session, user_rollups, USER_KEYS, user_rows)


async def add_refused(session: Db, *, category: str, created_at: datetime) -> None:
    """Count a refusal (credits, budget, busy): apart from `requests`, which counts the ones that ran."""
    await upsert_add(session, request_rollups, REQUEST_KEYS, _grains(created_at, {"category": category},
                                                                     {"refused": 1}))


# --- rebuild -------------------------------------------------------------------------------------

def _flag(condition: ColumnElement[bool] | Any) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _bucket_sql(latency: Any) -> ColumnElement[int]:
    # The same rule as latency_bucket(): the index of the first bound above the latency
    whens = [(latency < literal(bound), index) for index, bound in enumerate(LATENCY_BOUNDS_MS)]
    return case(*whens, else_=len(LATENCY_BOUNDS_MS))


def _attempt_rows(session: AsyncSession) -> Any:
    hour = epoch_seconds_sql(session, Attempt.started_at) // HOUR_S * HOUR_S
    ok = Attempt.kind.is_(None)
    bucket = _bucket_sql(Attempt.latency_ms)
    known = [_flag(Attempt.kind == kind).label(f"f_{kind}") for kind in FAILURE_KINDS]
    other = _flag(Attempt.kind.is_not(None) & Attempt.kind.not_in(FAILURE_KINDS)).label("f_other")
    buckets = [_flag(ok & (bucket == i)).label(name) for i, name in enumerate(BUCKET_COLUMNS)]
    return select(
        hour.label("start"), Attempt.provider, Attempt.category, literal(1).label("attempts"),
        _flag(ok).label("successes"), *known, other, Attempt.cost_micros,
        case((ok, Attempt.latency_ms), else_=0).label("latency_ms_sum"),
        literal(0).label("served"), literal(0).label("fallbacks"), *buckets,
    )


def _served_rows(session: AsyncSession) -> Any:
    hour = epoch_seconds_sql(session, Request.created_at) // HOUR_S * HOUR_S
    zeros = [literal(0).label(name) for name in ("attempts", "successes", *FAILURE_COLUMNS)]
    return select(
        hour.label("start"), Request.provider, Request.category, *zeros, literal(0).label("cost_micros"),
        literal(0).label("latency_ms_sum"), literal(1).label("served"),
        _flag(Request.fallback).label("fallbacks"), *[literal(0).label(name) for name in BUCKET_COLUMNS],
    ).where(Request.status == "served", Request.provider.is_not(None))


async def _rebuild_provider(session: AsyncSession) -> None:
    raw = union_all(_attempt_rows(session), _served_rows(session)).subquery()
    sums = [func.sum(raw.c[name]) for name in PROVIDER_COUNTERS]
    hourly = select(literal(HOURLY), raw.c.start, raw.c.provider, raw.c.category, *sums).group_by(
        raw.c.start, raw.c.provider, raw.c.category)
    await session.execute(insert(provider_rollups).from_select([*PROVIDER_KEYS, *PROVIDER_COUNTERS], hourly))
    await _days_from_hours(session, provider_rollups, ("provider", "category"), PROVIDER_COUNTERS)


async def _rebuild_requests(session: AsyncSession) -> None:
    hour = epoch_seconds_sql(session, Request.created_at) // HOUR_S * HOUR_S
    hourly = select(
        literal(HOURLY), hour, Request.category, func.sum(_flag(Request.status.in_(CLOSED_STATUSES))),
        *[func.sum(_flag(Request.status == status)) for status in CLOSED_STATUSES],
        func.sum(_flag(Request.fallback)), func.sum(Request.credits_charged),
        func.sum(Request.credits_refunded), func.sum(Request.cost_micros),
        func.sum(_flag(Request.status == "refused")),
    ).where(Request.status.in_(TERMINAL_STATUSES)).group_by(hour, Request.category)
    await session.execute(insert(request_rollups).from_select([*REQUEST_KEYS, *REQUEST_COUNTERS], hourly))
    await _days_from_hours(session, request_rollups, ("category",), REQUEST_COUNTERS)


async def _days_from_hours(session: AsyncSession, table: Any, keys: tuple[str, ...], counters: tuple[str, ...]) -> None:
    day = table.c.start // DAY_S * DAY_S
    daily = select(
        literal(DAILY), day, *[table.c[k] for k in keys], *[func.sum(table.c[c]) for c in counters]
    ).where(table.c.grain == HOURLY).group_by(day, *[table.c[k] for k in keys])
    await session.execute(insert(table).from_select(["grain", "start", *keys, *counters], daily))


async def _rebuild_users(session: AsyncSession) -> None:
    finest = USER_GRAINS_HOURS[-1]
    block = epoch_seconds_sql(session, Request.created_at) // HOUR_S // finest * finest
    blocks = select(
        literal(finest), block, Request.user_id, func.count(),
        func.sum(Request.credits_charged - Request.credits_refunded), func.sum(Request.cost_micros),
    ).where(Request.status.in_(CLOSED_STATUSES)).group_by(block, Request.user_id)
    await session.execute(insert(user_rollups).from_select([*USER_KEYS, *USER_COUNTERS], blocks))
    t = user_rollups.c
    for grain in USER_GRAINS_HOURS[:-1]:
        start = t.start_hour // grain * grain
        larger = select(
            literal(grain), start, t.user_id, *[func.sum(t[c]) for c in USER_COUNTERS]
        ).where(t.grain_hours == finest).group_by(start, t.user_id)
        await session.execute(insert(user_rollups).from_select([*USER_KEYS, *USER_COUNTERS], larger))


async def rebuild_rollups(session: AsyncSession) -> None:
    """Recompute every rollup from the raw rows (in the caller's transaction)."""
    for table in (provider_rollups, request_rollups, user_rollups):
        await session.execute(delete(table))
    await _rebuild_provider(session)
    await _rebuild_requests(session)
    await _rebuild_users(session)
