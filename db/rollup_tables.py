"""Rollups kept on write, so stats read thousands of rows instead of millions.

    provider_rollups  (grain, start, provider, category)  attempts, successes, failures per kind, cost,
                      latency sum and histogram of successful attempts, served and fallback counts
    request_rollups   (grain, start, category)            finished requests, by outcome, credits, cost
    user_rollups      (grain_hours, start_hour, user_id)  finished requests, net credits, cost per user

`grain` is 3600 (an hour) or 86400 (a day) and `start` the UTC epoch second it begins: a period reads whole
days from the daily rows and the hours at its edges from the hourly ones. Per-user rows come in aligned
blocks of 6 hours and 1, 2, 4, 8, 16 UTC days (`db.periods.user_cover`), because with thousands of active
users even one row per user per day is too many to sum for a 30-day top list; the few hours at a period's
edges that no block fits (under 6 at each end) are summed from the requests' covering index instead.

Attempts are counted at their `started_at` hour; everything about a request (served, fallback, credits,
cost) at its `created_at` hour, once it is finished.
Latency is bucketed on a fixed log scale (six buckets per decade, 10 ms to 10^7 ms): p95 is read from the
histogram, within one bucket (±47%) of the exact value.
"""

from __future__ import annotations

from bisect import bisect_right

from sqlalchemy import BigInteger, Column, Integer, String, Table

from db.models import Base

HOURLY = 3600
DAILY = 86400

FAILURE_KINDS = (
    "rate_limited", "quota_exhausted", "auth", "unavailable", "invalid_response", "bad_request",
    "content_policy",
)
BUCKET_RATIO = 10 ** (1 / 6)
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(10 ** (1 + k / 6) for k in range(37))
LATENCY_BUCKETS = len(LATENCY_BOUNDS_MS) + 1
BUCKET_COLUMNS = tuple(f"lat_{i:02d}" for i in range(LATENCY_BUCKETS))
FAILURE_COLUMNS = (*(f"f_{kind}" for kind in FAILURE_KINDS), "f_other")

PROVIDER_KEYS = ("grain", "start", "provider", "category")
PROVIDER_COUNTERS = (
    "attempts", "successes", *FAILURE_COLUMNS, "cost_micros", "latency_ms_sum", "served", "fallbacks",
    *BUCKET_COLUMNS,
)
REQUEST_KEYS = ("grain", "start", "category")
REQUEST_COUNTERS = (
    "requests", "served", "failed", "canceled", "fallbacks", "credits_charged", "credits_refunded",
    "cost_micros", "refused",
)
USER_KEYS = ("grain_hours", "start_hour", "user_id")
USER_COUNTERS = ("requests", "credits", "cost_micros")


def latency_bucket(latency_ms: int) -> int:
    """Index of the histogram bucket: 0 is below 10 ms, the last is 10^7 ms and above."""
    return bisect_right(LATENCY_BOUNDS_MS, latency_ms)


def bucket_bounds(index: int) -> tuple[float, float]:
    """[low, high) of a bucket in ms; the open-ended last bucket is given the width of the one before."""
    low = 0.0 if index == 0 else LATENCY_BOUNDS_MS[index - 1]
    high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else low * BUCKET_RATIO
    return low, high


def failure_column(kind: str) -> str:
    return f"f_{kind}" if kind in FAILURE_KINDS else "f_other"


def _counter(name: str) -> Column[int]:
    return Column(name, BigInteger, nullable=False, server_default="0")


provider_rollups = Table(
    "provider_rollups",
    Base.metadata,
    Column("grain", Integer, primary_key=True),
    Column("start", BigInteger, primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("category", String(32), primary_key=True),
    *[_counter(name) for name in PROVIDER_COUNTERS],
    sqlite_with_rowid=False,
)

request_rollups = Table(
    "request_rollups",
    Base.metadata,
    Column("grain", Integer, primary_key=True),
    Column("start", BigInteger, primary_key=True),
    Column("category", String(32), primary_key=True),
    *[_counter(name) for name in REQUEST_COUNTERS],
    sqlite_with_rowid=False,
)

user_rollups = Table(
    "user_rollups",
    Base.metadata,
    Column("grain_hours", Integer, primary_key=True),
    Column("start_hour", Integer, primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    *[_counter(name) for name in USER_COUNTERS],
    sqlite_with_rowid=False,
)
