"""Period arithmetic: named periods in a timezone, budget keys, and the rollup covers of an hour span."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db.periods import USER_GRAINS_HOURS, budget_keys, period_named, split_hours, user_cover
from db.repo.stats_types import p95_from_histogram
from db.rollup_tables import LATENCY_BOUNDS_MS, LATENCY_BUCKETS, bucket_bounds, latency_bucket

NOW = datetime(2024, 3, 31, 22, 30, tzinfo=UTC)  # already April 1st in Moscow (UTC+3)

spans = st.tuples(st.integers(400_000, 500_000), st.integers(0, 2000)).map(lambda t: (t[0], t[0] + t[1]))


@pytest.mark.parametrize(("name", "start", "end"), [
    ("today", datetime(2024, 3, 31, 21, tzinfo=UTC), datetime(2024, 4, 1, 21, tzinfo=UTC)),
    ("yesterday", datetime(2024, 3, 30, 21, tzinfo=UTC), datetime(2024, 3, 31, 21, tzinfo=UTC)),
    ("7d", datetime(2024, 3, 25, 21, tzinfo=UTC), datetime(2024, 4, 1, 21, tzinfo=UTC)),
    ("30d", datetime(2024, 3, 2, 21, tzinfo=UTC), datetime(2024, 4, 1, 21, tzinfo=UTC)),
    ("month", datetime(2024, 3, 31, 21, tzinfo=UTC), datetime(2024, 4, 30, 21, tzinfo=UTC)),
])
def test_named_periods_are_local_calendar_spans(name: str, start: datetime, end: datetime) -> None:
    period = period_named(name, "Europe/Moscow", now=NOW)
    assert (period.start, period.end, period.name) == (start, end, name)


def test_unknown_periods_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown period"):
        period_named("fortnight")
    with pytest.raises(ValueError, match="naive"):
        period_named("today", now=datetime(2024, 1, 1))


def test_budget_keys_follow_the_local_calendar() -> None:
    assert budget_keys(NOW, "UTC") == (20240331, 202403)
    assert budget_keys(NOW, "Europe/Moscow") == (20240401, 202404)


@given(spans)
def test_split_hours_tiles_the_span_with_whole_days_and_edge_hours(span: tuple[int, int]) -> None:
    first, last = span
    split = split_hours(first, last)
    covered = [h for d in range(split.day_from, split.day_to) for h in range(d * 24, d * 24 + 24)]
    covered += [h for a, b in split.edges for h in range(a, b)]
    assert sorted(covered) == list(range(first, last))
    assert sum(b - a for a, b in split.edges) < 48  # hourly rows read: under two days


@given(spans)
def test_user_cover_tiles_the_span_with_aligned_blocks_and_short_edges(span: tuple[int, int]) -> None:
    first, last = span
    blocks, edges = user_cover(first, last)
    covered = [h for g, start in blocks for h in range(start, start + g)] + [h for a, b in edges for h in range(a, b)]
    assert sorted(covered) == list(range(first, last))
    assert all(g in USER_GRAINS_HOURS and start % g == 0 for g, start in blocks)
    assert sum(b - a for a, b in edges) < 2 * USER_GRAINS_HOURS[-1]
    assert len(blocks) <= 2 * len(USER_GRAINS_HOURS) + last // 384 - first // 384
    if first % 24 == 0 and last % 24 == 0:
        assert edges == []  # UTC periods never read raw rows


@given(st.lists(st.integers(0, 30_000_000), min_size=1, max_size=200))
def test_p95_from_the_histogram_lies_in_the_bucket_of_the_exact_p95(latencies: list[int]) -> None:
    counts = [0] * LATENCY_BUCKETS
    for latency in latencies:
        counts[latency_bucket(latency)] += 1
    exact = sorted(latencies)[-(-95 * len(latencies) // 100) - 1]
    low, high = bucket_bounds(latency_bucket(exact))
    estimate = p95_from_histogram(counts)
    assert estimate is not None and low <= estimate <= high
    assert low <= exact and (exact < high or latency_bucket(exact) == len(LATENCY_BOUNDS_MS))


def test_an_empty_histogram_has_no_p95() -> None:
    assert p95_from_histogram([0] * LATENCY_BUCKETS) is None
