"""Claims: "this happens once" among every process. `claim(key, ttl)` is True for the first caller only,
until `ttl` seconds pass. `LocalClaims` in this process; `RedisClaims` with SET NX and an expiry. When
Redis fails a claim is decided locally (a WARNING is logged): a duplicate message is better than none."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bot.shared.base import Degraded, redis_errors, uncancellable

if TYPE_CHECKING:
    from redis.asyncio import Redis


class Claims(Protocol):
    async def claim(self, key: str, ttl: float) -> bool: ...


class LocalClaims:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._until: dict[str, float] = {}

    async def claim(self, key: str, ttl: float) -> bool:
        return self.claim_now(key, ttl)

    def claim_now(self, key: str, ttl: float) -> bool:
        now = self.clock()
        if self._until.get(key, 0.0) > now:
            return False
        self._until[key] = now + ttl
        if len(self._until) > 10_000:
            self._until = {k: u for k, u in self._until.items() if u > now}
        return True


class RedisClaims:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.local = LocalClaims()
        self._degraded = Degraded("once-only claims")

    async def claim(self, key: str, ttl: float) -> bool:
        try:
            return bool(await uncancellable(self.redis.set(f"{self.prefix}once:{key}", "1", nx=True,
                                                           px=max(1, int(ttl * 1000)))))
        except redis_errors() as exc:
            self._degraded.warn(exc)
            return self.local.claim_now(key, ttl)
