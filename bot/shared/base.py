"""What every shared piece has in common: Redis errors degrade to the local implementation, loudly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from loguru import logger


def redis_errors() -> tuple[type[BaseException], ...]:
    """Redis client errors, and the socket errors redis-py lets through on a dropped connection. A function,
    so that `except redis_errors()` imports redis only where a Redis piece meets an error: a bot without
    REDIS_URL never loads the client."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)

_WARN_EVERY_S = 30.0
T = TypeVar("T")


async def uncancellable(command: Awaitable[T]) -> T:
    """Await a Redis command so that cancelling the caller really cancels it.

    redis-py can swallow a cancellation that lands while a command is in flight: the caller then runs on as
    if never cancelled, and whoever awaits its end (a chat action loop stopped when the answer is out) waits
    forever. The command runs as a task of its own behind a shield; a cancellation is raised in the caller,
    and the command ends by itself (its outcome, an error too, is dropped)."""
    task = asyncio.ensure_future(command)
    task.add_done_callback(_drop_outcome)
    return await asyncio.shield(task)


def _drop_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # read, so asyncio does not log "exception was never retrieved"


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
