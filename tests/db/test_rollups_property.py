"""Hypothesis: stats read from the rollups equal the same figures computed from the raw rows, for random
traffic (served, failed, canceled, delivered then failed, refused, still open) and random periods; and
`rebuild_rollups` recomputes exactly what the write side kept."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import make_engine, make_session_maker
from db.models import CLOSED_STATUSES, Attempt, Request
from db.periods import Period, period_named
from db.repo.lifecycle import close_failed, close_served, mark_delivered, record_attempts, refuse
from db.repo.records import AttemptRecord, ServedRecord
from db.repo.rollups import rebuild_rollups
from db.repo.stats import provider_stats, request_totals, top_users
from db.rollup_tables import (
    DAILY,
    HOURLY,
    LATENCY_BOUNDS_MS,
    bucket_bounds,
    latency_bucket,
    provider_rollups,
    request_rollups,
    user_rollups,
)
from tests.db.conftest import FreshDb, examples
from tests.db.support import OWNER, make_user, reserve

BASE = datetime(2024, 3, 8, tzinfo=UTC)
SPAN_MIN = 4 * 24 * 60
KINDS = [None, None, "rate_limited", "unavailable", "quota_exhausted", "content_policy", "weird_kind"]

# Latencies on and around every bucket bound, so the SQL and Python bucketing must agree exactly
EDGES = sorted({f(b) for b in LATENCY_BOUNDS_MS for f in (math.floor, math.ceil)})
latency = st.one_of(st.integers(0, 40), st.integers(0, 20_000_000), st.sampled_from(EDGES))
attempt = st.tuples(st.sampled_from(["alpha", "beta", "gamma"]), st.sampled_from(KINDS), latency,
                    st.integers(0, 5000))
traffic = st.lists(st.tuples(
    st.integers(1, 4), st.integers(0, SPAN_MIN), st.sampled_from(["text", "image"]), st.integers(0, 3),
    st.lists(attempt, min_size=1, max_size=3),
    st.sampled_from(["served", "failed", "delivered_then_failed", "canceled", "open", "busy", "insufficient"]),
), max_size=25)
periods = st.tuples(st.integers(-30, 5 * 24), st.integers(0, 5 * 24))


async def _log(s: AsyncSession, traffic: list[Any]) -> None:
    for user, minute, category, credits, attempts, outcome in traffic:
        at = BASE + timedelta(minutes=minute)
        if outcome == "busy":  # turned away before any charge: a row, no attempts
            await refuse(s, tg_id=user, update_id=None, label="L", category=category, prompt="", reason="busy", now=at)
            continue
        wanted = 10**6 if outcome == "insufficient" else credits  # more than anyone has
        res = await reserve(s, user, wanted, now=at, category=category, route_first="alpha")
        assert res.request_id is not None and res.ok == (outcome != "insufficient")
        if not res.ok:
            continue
        rid = res.request_id
        await record_attempts(s, rid, [
            AttemptRecord(provider, "m", category, order, kind, 200, latency, cost,
                          started_at=at + timedelta(seconds=order * 50))
            for order, (provider, kind, latency, cost) in enumerate(attempts)])
        provider, _, latency, cost = attempts[-1]
        if outcome == "delivered_then_failed":
            assert await mark_delivered(s, rid, OWNER, at)
        if outcome == "served":
            assert await close_served(s, rid, OWNER, ServedRecord(provider, "m", cost, latency))
        elif outcome != "open":
            assert await close_failed(s, rid, OWNER, error_kind="unavailable", canceled=outcome == "canceled",
                                      cost_micros=cost) is not None


def _raw_provider(attempts: list[Attempt], requests: list[Request], period: Period, category: str | None
                  ) -> dict[str, dict[str, Any]]:
    start, end = period.hour_bounds()
    out: dict[str, dict[str, Any]] = {}
    for a in attempts:
        if start <= a.started_at < end and category in (None, a.category):
            p = out.setdefault(a.provider, {"attempts": 0, "ok": [], "failures": {}, "cost": 0, "served": 0, "fb": 0})
            p["attempts"] += 1
            p["cost"] += a.cost_micros
            if a.kind is None:
                p["ok"].append(a.latency_ms)
            else:
                kind = a.kind if a.kind != "weird_kind" else "other"
                p["failures"][kind] = p["failures"].get(kind, 0) + 1
    for r in requests:
        if r.status == "served" and start <= r.created_at < end and category in (None, r.category):
            p = out.setdefault(r.provider or "", {"attempts": 0, "ok": [], "failures": {}, "cost": 0, "served": 0,
                                                  "fb": 0})
            p["served"] += 1
            p["fb"] += int(r.fallback)
    return out


async def _compare(s: AsyncSession, period: Period) -> None:
    attempts = list((await s.scalars(select(Attempt))).all())
    requests = list((await s.scalars(select(Request))).all())
    for category in (None, "text", "image"):
        raw = _raw_provider(attempts, requests, period, category)
        stats = {p.provider: p for p in await provider_stats(s, period, category)}
        assert set(stats) == set(raw)
        for name, p in stats.items():
            r = raw[name]
            assert (p.attempts, p.successes, dict(p.failures), p.cost_micros, p.served, p.fallbacks) == (
                r["attempts"], len(r["ok"]), r["failures"], r["cost"], r["served"], r["fb"])
            if r["ok"]:
                assert p.avg_latency_ms == sum(r["ok"]) / len(r["ok"])
                nearest_rank = sorted(r["ok"])[math.ceil(0.95 * len(r["ok"])) - 1]
                low, high = bucket_bounds(latency_bucket(nearest_rank))
                assert p.p95_latency_ms is not None and low <= p.p95_latency_ms <= high
    start, end = period.hour_bounds()
    closed = [r for r in requests if r.status in CLOSED_STATUSES and start <= r.created_at < end]
    totals = await request_totals(s, period)
    assert (totals.requests, totals.served, totals.failed, totals.canceled, totals.fallbacks,
            totals.credits_charged, totals.credits_refunded, totals.cost_micros) == (
        len(closed), sum(r.status == "served" for r in closed), sum(r.status == "failed" for r in closed),
        sum(r.status == "canceled" for r in closed), sum(r.fallback for r in closed),
        sum(r.credits_charged for r in closed), sum(r.credits_refunded for r in closed),
        sum(r.cost_micros for r in closed))
    per_user: dict[int, list[int]] = {}
    for r in closed:
        acc = per_user.setdefault(r.user_id, [0, 0, 0])
        acc[0] += 1
        acc[1] += r.credits_charged - r.credits_refunded
        acc[2] += r.cost_micros
    expected = sorted(per_user.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0]))
    got = await top_users(s, period, limit=10)
    assert [(u.tg_id, [u.requests, u.credits, u.cost_micros]) for u in got] == expected


async def _refusals_counted(s: AsyncSession) -> None:
    """Every refused row is counted once in `refused`, at its hour and day, and never in `requests`."""
    raw = await s.scalar(select(func.count()).where(Request.status == "refused"))
    for grain in (HOURLY, DAILY):
        c = request_rollups.c
        row = (await s.execute(select(func.sum(c.refused), func.sum(c.requests)).where(c.grain == grain))).one()
        assert int(row[0] or 0) == raw
        assert int(row[1] or 0) == await s.scalar(select(func.count()).where(Request.status.in_(CLOSED_STATUSES)))


async def _snapshot(s: AsyncSession) -> dict[str, set[tuple[Any, ...]]]:
    tables = (provider_rollups, request_rollups, user_rollups)
    return {t.name: {tuple(row) for row in (await s.execute(select(t))).all() if any(row[len(t.primary_key.columns):])}
            for t in tables}


async def _scenario(url: str, traffic: list[Any], spans: list[tuple[int, int]], tz: str) -> None:
    engine = make_engine(url)
    try:
        async with make_session_maker(engine)() as s, s.begin():
            for user in (1, 2, 3, 4):
                await make_user(s, user, credits=1000)
            await _log(s, traffic)
            for offset, length in spans:
                first = BASE + timedelta(hours=offset)
                await _compare(s, Period(first, first + timedelta(hours=length)))
            for name in ("today", "yesterday", "7d", "30d"):
                await _compare(s, period_named(name, tz, now=BASE + timedelta(days=2, hours=7)))
            await _refusals_counted(s)
            kept = await _snapshot(s)
            await rebuild_rollups(s)
            assert await _snapshot(s) == kept
    finally:
        await engine.dispose()


def test_rollup_stats_equal_raw_figures_and_the_rebuild_agrees(fresh_db: FreshDb) -> None:
    # @given inside, so the number of examples can depend on the backend (see tests/db/conftest.py)
    @settings(max_examples=examples(fresh_db.backend, 30), deadline=None)
    @given(traffic=traffic, spans=st.lists(periods, min_size=1, max_size=4),
           tz=st.sampled_from(["UTC", "Europe/Moscow", "America/Los_Angeles", "Asia/Kolkata"]))
    def check(traffic: list[Any], spans: list[tuple[int, int]], tz: str) -> None:
        asyncio.run(_scenario(fresh_db.new(), traffic, spans, tz))

    check()
