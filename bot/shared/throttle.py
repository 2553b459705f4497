"""Per-user flood control's memory: at most `rate` updates in any `window` seconds, and one slow-down
notice per window. `LocalFloodGate` in this process; `RedisFloodGate` shared by every front (a sliding log
in a sorted set, one Lua script per update), falling back to a local gate when Redis fails."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from bot.shared.base import Degraded, redis_errors, uncancellable

if TYPE_CHECKING:
    from redis.asyncio import Redis


class Verdict(NamedTuple):
    allowed: bool
    warn: bool  # refused, and the first refusal of this window: tell the user to slow down


class FloodGate(Protocol):
    async def hit(self, user_id: int) -> Verdict: ...


class LocalFloodGate:
    def __init__(self, rate: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.window = window
        self.clock = clock
        self._hits: dict[int, deque[float]] = {}
        self._warned_until: dict[int, float] = {}

    async def hit(self, user_id: int) -> Verdict:
        return self.hit_now(user_id)

    def hit_now(self, user_id: int) -> Verdict:
        now = self.clock()
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) < self.rate:
            hits.append(now)
            if len(self._hits) > 50_000:
                self._forget_idle(now)
            return Verdict(True, False)
        if self._warned_until.get(user_id, 0.0) > now:
            return Verdict(False, False)
        self._warned_until[user_id] = now + self.window
        return Verdict(False, True)

    def _forget_idle(self, now: float) -> None:
        for user_id in [u for u, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            self._hits.pop(user_id, None)
            self._warned_until.pop(user_id, None)


# KEYS: the user's hits (sorted set, score = ms), the user's warned flag. ARGV: rate, window ms, a unique
# member. Returns 1 allowed, 2 refused with a notice, 0 refused quietly. Same rule as LocalFloodGate.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < rate then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window))
  return 1
end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', math.ceil(window)) then return 2 end
return 0
"""


class RedisFloodGate:
    def __init__(self, redis: Redis, prefix: str, rate: int, window: float) -> None:
        self.prefix = prefix
        self.rate = rate
        self.window = window
        self.local = LocalFloodGate(rate, window)
        self._hit = redis.register_script(_HIT)
        self._degraded = Degraded("flood control")

    async def hit(self, user_id: int) -> Verdict:
        keys = [f"{self.prefix}throttle:{user_id}", f"{self.prefix}throttle:warned:{user_id}"]
        try:
            answer = await uncancellable(self._hit(keys=keys, args=[self.rate, self.window * 1000, uuid.uuid4().hex]))
        except redis_errors() as exc:
            self._degraded.warn(exc)
            return self.local.hit_now(user_id)
        return Verdict(answer == 1, answer == 2)
