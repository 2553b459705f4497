"""Periods for stats and budgets: local calendar spans in the configured TIMEZONE, as UTC instants.

Rollups are kept per UTC hour and per UTC day (see `db/rollup_tables.py`), so stats read a period as whole
UTC hours: its start and end are rounded down to the hour. For every timezone whose UTC offset is a whole
number of hours that is exact. For half- and quarter-hour offsets (India +05:30, Nepal +05:45, parts of
Australia) a period is read shifted by that fraction: "today" in Asia/Kolkata starts at 18:00 UTC instead of
18:30 UTC the day before, and ends 30 minutes early by the same rule.

Day and month keys for budgets are plain integers (20240131, 202401) of the local calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

HOUR_S = 3600
DAY_S = 86400
PERIOD_NAMES = ("today", "yesterday", "7d", "30d", "month")
USER_GRAINS_HOURS = (384, 192, 96, 48, 24, 6)  # blocks of the per-user rollup, largest first


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware one")
    return moment.astimezone(UTC)


def epoch_seconds(moment: datetime) -> int:
    return int(as_utc(moment).timestamp())


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC; `name` is what the admin asked for (today, 7d, ...), for display."""

    start: datetime
    end: datetime
    name: str = ""

    def __post_init__(self) -> None:
        if as_utc(self.end) < as_utc(self.start):
            raise ValueError("a period cannot end before it starts")

    def hours(self) -> tuple[int, int]:
        """The UTC hours [first, last) that the rollups read (rounded down, see the module doc)."""
        return epoch_seconds(self.start) // HOUR_S, epoch_seconds(self.end) // HOUR_S

    def hour_bounds(self) -> tuple[datetime, datetime]:
        """The same span as instants, for queries on raw rows that must agree with the rollups."""
        first, last = self.hours()
        return datetime.fromtimestamp(first * HOUR_S, UTC), datetime.fromtimestamp(last * HOUR_S, UTC)


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    # fold=0 and a non-existent midnight (a DST jump at 00:00) both resolve forwards through UTC
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_named(name: str, tz: str | tzinfo = "UTC", now: datetime | None = None) -> Period:
    """today | yesterday | 7d | 30d (the last N local days including today) | month (this local month)."""
    zone = as_zone(tz)
    today = as_utc(now or utcnow()).astimezone(zone).date()
    if name == "today":
        first, last = today, today + timedelta(days=1)
    elif name == "yesterday":
        first, last = today - timedelta(days=1), today
    elif name in ("7d", "30d"):
        first, last = today - timedelta(days=int(name[:-1]) - 1), today + timedelta(days=1)
    elif name == "month":
        first = today.replace(day=1)
        last = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {name!r}; use one of {', '.join(PERIOD_NAMES)}")
    return Period(_local_midnight(first, zone), _local_midnight(last, zone), name)


def period_between(start: datetime, end: datetime, name: str = "") -> Period:
    return Period(as_utc(start), as_utc(end), name)


def budget_keys(moment: datetime, tz: str | tzinfo) -> tuple[int, int]:
    """(YYYYMMDD, YYYYMM) of the local calendar: the periods a per-user budget counts in."""
    local = as_utc(moment).astimezone(as_zone(tz))
    return local.year * 10000 + local.month * 100 + local.day, local.year * 100 + local.month


@dataclass(frozen=True, slots=True)
class HourSplit:
    """A span of UTC hours cut into whole UTC days [day_from, day_to) and the hours left at each edge."""

    day_from: int
    day_to: int
    edges: tuple[tuple[int, int], ...]  # hour ranges [from, to)


def split_hours(first_hour: int, last_hour: int) -> HourSplit:
    day_from = -(-first_hour // 24)  # ceil
    day_to = last_hour // 24
    if day_from >= day_to:
        return HourSplit(0, 0, ((first_hour, last_hour),) if first_hour < last_hour else ())
    edges = tuple((a, b) for a, b in ((first_hour, day_from * 24), (day_to * 24, last_hour)) if a < b)
    return HourSplit(day_from, day_to, edges)


def user_cover(first_hour: int, last_hour: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Tile the hours [first, last) with aligned per-user rollup blocks (grain_hours, start_hour), largest
    first, and return the hour ranges left at the edges (read from raw rows).

    A block of g hours starts on a multiple of g, so each hour belongs to exactly one block per grain and
    the rollup keeps every grain by plain upserts. Grains are 6 hours and 1, 2, 4, 8, 16 days: a 30-day
    span needs about 8 blocks, and the raw edges are under 6 hours at each end (none for UTC periods).
    """
    blocks: list[tuple[int, int]] = []
    edges: list[tuple[int, int]] = []
    hour = first_hour
    while hour < last_hour:
        grain = next((g for g in USER_GRAINS_HOURS if hour % g == 0 and hour + g <= last_hour), None)
        if grain is not None:
            blocks.append((grain, hour))
            hour += grain
            continue
        step = min(last_hour, hour - hour % USER_GRAINS_HOURS[-1] + USER_GRAINS_HOURS[-1])
        if edges and edges[-1][1] == hour:
            edges[-1] = (edges[-1][0], step)
        else:
            edges.append((hour, step))
        hour = step
    return blocks, edges
