"""The plain frozen dataclasses that stats return, and how they are built from summed rollup counters.

Definitions (the same in /stats, the digest and the CSV):
- success rate = successes / attempts, over every attempt (failures of providers that did not serve count);
- average cost = total cost of the provider's attempts / its successes (what one served result costs);
- average and p95 latency are of successful attempts; p95 comes from the latency histogram;
- fallback rate = served requests not served by the first provider of their route / served requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from db.periods import Period
from db.rollup_tables import BUCKET_COLUMNS, FAILURE_COLUMNS, bucket_bounds


@dataclass(frozen=True, slots=True)
class ProviderStats:
    provider: str
    category: str | None  # None: every category together
    attempts: int
    successes: int
    failures: Mapping[str, int]  # kind -> count (non-zero only; "other" for kinds outside ErrorKind)
    success_rate: float
    cost_micros: int
    avg_cost_micros: int
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    served: int
    fallbacks: int

    @property
    def failed(self) -> int:
        return self.attempts - self.successes


@dataclass(frozen=True, slots=True)
class RequestTotals:
    """Finished requests (served, failed, canceled) created in the period, and the ones refused before
    anything was charged (not enough credits, budget reached, busy), which `requests` does not count."""

    requests: int = 0
    served: int = 0
    failed: int = 0
    canceled: int = 0
    fallbacks: int = 0
    credits_charged: int = 0
    credits_refunded: int = 0
    cost_micros: int = 0
    refused: int = 0

    @property
    def fallback_rate(self) -> float:
        return self.fallbacks / self.served if self.served else 0.0


@dataclass(frozen=True, slots=True)
class UserSpend:
    tg_id: int
    username: str | None
    first_name: str | None
    requests: int
    credits: int  # charged minus refunded
    cost_micros: int


@dataclass(frozen=True, slots=True)
class UserUsage:
    """For /balance: what is left, and what went today and this month (local calendar)."""

    tg_id: int
    credits_left: int
    requests_today: int
    credits_today: int
    cost_today_micros: int
    requests_month: int
    credits_month: int
    cost_month_micros: int


@dataclass(frozen=True, slots=True)
class Digest:
    period: Period
    totals: RequestTotals
    totals_by_category: Mapping[str, RequestTotals]
    providers: tuple[ProviderStats, ...]  # every category together, most attempts first
    by_category: Mapping[str, tuple[ProviderStats, ...]]  # cheapest first, as in cost_comparison
    recommended: Mapping[str, str | None]  # category -> provider name
    top_users: tuple[UserSpend, ...]

    @property
    def fallback_rate(self) -> float:
        return self.totals.fallback_rate


def p95_from_histogram(counts: Sequence[int]) -> float | None:
    """Nearest-rank p95, placed inside its bucket by linear interpolation."""
    total = sum(counts)
    if not total:
        return None
    rank = math.ceil(0.95 * total)
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low, high = bucket_bounds(index)
            return low + (high - low) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: the ranks add up to the total")


def provider_stats_from(provider: str, category: str | None, sums: Mapping[str, int]) -> ProviderStats:
    attempts, successes = sums.get("attempts", 0), sums.get("successes", 0)
    failures = {name[2:]: sums[name] for name in FAILURE_COLUMNS if sums.get(name)}
    cost = sums.get("cost_micros", 0)
    return ProviderStats(
        provider=provider, category=category, attempts=attempts, successes=successes, failures=failures,
        success_rate=successes / attempts if attempts else 0.0, cost_micros=cost,
        avg_cost_micros=cost // successes if successes else 0,
        avg_latency_ms=sums.get("latency_ms_sum", 0) / successes if successes else None,
        p95_latency_ms=p95_from_histogram([sums.get(name, 0) for name in BUCKET_COLUMNS]),
        served=sums.get("served", 0), fallbacks=sums.get("fallbacks", 0),
    )


def merge_sums(into: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, 0) + value


def by_cost(stats: Sequence[ProviderStats]) -> list[ProviderStats]:
    """Providers that served anything, cheapest per result first; the more reliable first on a tie."""
    return sorted((s for s in stats if s.successes), key=lambda s: (s.avg_cost_micros, -s.success_rate, s.provider))


def pick_recommended(stats: Sequence[ProviderStats], min_attempts: int) -> ProviderStats | None:
    """The cheapest provider with a success rate above 80% over at least `min_attempts` attempts."""
    return next((s for s in by_cost(stats) if s.success_rate > 0.8 and s.attempts >= min_attempts), None)
