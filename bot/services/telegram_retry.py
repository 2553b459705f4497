"""One Bot API call that must not be lost to flood control or a brief network failure.

Telegram answers 429 with a `retry_after` when a chat or the bot sends too fast; waiting that long and
sending again is what it asks for. A network error (a reset connection, a timeout) is usually gone a moment
later. Anything else (a bad request, a blocked user) is the caller's to handle and is raised at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter
from loguru import logger

T = TypeVar("T")
FINAL_ATTEMPTS = 6  # a user's answer: worth waiting for through several floods


async def with_retry(call: Callable[[], Awaitable[T]], attempts: int = FINAL_ATTEMPTS, *,
                     max_wait_s: float | None = None, retry_network: bool = True) -> T:
    """`call()`, repeated up to `attempts` times in all; the last failure is raised.

    `max_wait_s` caps each `retry_after` wait (a notice to admins need not hold a task for minutes);
    `retry_network=False` raises a network error at once instead of trying again after a short backoff.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TelegramRetryAfter as exc:
            if attempt == attempts:
                raise
            wait = float(exc.retry_after) if max_wait_s is None else min(float(exc.retry_after), max_wait_s)
            logger.info("telegram asks to wait {}s before retrying", exc.retry_after)
            await asyncio.sleep(wait)
        except TelegramNetworkError:
            if not retry_network or attempt == attempts:
                raise
            await asyncio.sleep(min(2.0**attempt * 0.1, 5.0))
    raise AssertionError("unreachable")
