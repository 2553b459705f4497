"""Identical concurrent requests share one provider call; optionally, recent results are reused.

`SingleFlight.run(key, work)`: the first caller (the leader) runs `work`; callers with the same key that
arrive while it runs (followers) wait for the leader's outcome instead of calling the provider again.
If the leader is cancelled, its followers do not inherit the cancellation: one of them takes over and
calls the provider itself. `ResultCache`: a bounded TTL cache, enabled per category in the settings.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _LeaderGone(Exception):
    """The leader was cancelled; a follower should run the work itself."""


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._flights)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The outcome of `work` and whether it was shared (True for followers)."""
        while (flight := self._flights.get(key)) is not None:
            try:
                return await asyncio.shield(flight), True
            except _LeaderGone:
                continue
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value = await work()
        except asyncio.CancelledError:
            self._settle(flight, _LeaderGone())
            raise
        except BaseException as exc:
            self._settle(flight, exc)
            raise
        finally:
            del self._flights[key]
        flight.set_result(value)
        return value, False

    @staticmethod
    def _settle(flight: asyncio.Future[T], exc: BaseException) -> None:
        flight.set_exception(exc)
        flight.exception()  # mark it retrieved: without followers nobody else will


class ResultCache(Generic[T]):
    """LRU-bounded, TTL-expiring; the clock is the caller's (monotonic seconds)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, T]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, now: float) -> T | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= now:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: T, ttl_s: float, now: float) -> None:
        if ttl_s <= 0 or self.max_entries <= 0:
            return
        self._items[key] = (now + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)
