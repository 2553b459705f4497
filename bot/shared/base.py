"""What every shared piece has in common: Redis errors degrade to the local implementation, loudly once."""

from __future__ import annotations

import time

from loguru import logger
from redis.exceptions import RedisError

# Redis client errors, and the socket errors redis-py lets through on a dropped connection
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)

_WARN_EVERY_S = 30.0


class Degraded:
    """Logs a WARNING when a Redis call failed and the local implementation answered instead, at most once
    per 30 s per piece. Only the error's class is logged: a connection error's text may name the URL."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._last = -1e9

    def warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last >= _WARN_EVERY_S:
            self._last = now
            logger.warning("redis unavailable for the {} ({}); using this process's own until it is back",
                           self.what, type(exc).__name__)
