"""Update ids seen moments ago (Telegram re-delivers after timeouts and restarts, and in webhook mode any
of several fronts may get the re-delivery). `LocalSeenUpdates` remembers the last ids in this process;
`RedisSeenUpdates` marks each id with SET NX and an expiry, so a duplicate is served once by all fronts
together. Across everything, the charge is still protected by the unique update id in the requests table."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from bot.shared.base import Degraded, redis_errors, uncancellable

if TYPE_CHECKING:
    from redis.asyncio import Redis

SEEN_TTL_S = 3600.0  # Telegram's re-deliveries come within minutes; the database catches anything later


class SeenUpdates(Protocol):
    async def first(self, update_id: int) -> bool:
        """True the first time `update_id` is offered (and it is marked as seen)."""
        ...


class LocalSeenUpdates:
    def __init__(self, remember: int = 10_000) -> None:
        self.remember = remember
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def first(self, update_id: int) -> bool:
        return self.first_now(update_id)

    def first_now(self, update_id: int) -> bool:
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        if len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return True


class RedisSeenUpdates:
    def __init__(self, redis: Redis, prefix: str, ttl_s: float = SEEN_TTL_S) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.local = LocalSeenUpdates()
        self._degraded = Degraded("update de-duplication")

    async def first(self, update_id: int) -> bool:
        mine = self.local.first_now(update_id)  # also what answers while Redis does not
        try:
            claimed = await uncancellable(self.redis.set(f"{self.prefix}update:{update_id}", "1", nx=True,
                                                         px=int(self.ttl_s * 1000)))
        except redis_errors() as exc:
            self._degraded.warn(exc)
            return mine
        return mine and bool(claimed)
