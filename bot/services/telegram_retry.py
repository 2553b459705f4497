"""One Bot API call that must not be lost to flood control or a brief network failure.

Telegram answers 429 with a `retry_after` when a chat or the bot sends too fast; waiting that long and
sending again is what it asks for. A network error (a reset connection, a timeout) is usually gone a moment
later. Anything else (a bad request, a blocked user) is the caller's to handle and is raised at once.

A Bot with the send limiter on its session (`bot.shared.Shared.install`) paces its sends, and the limiter
shares every 429 with the other processes and itself waits and sends again, as far as the caller's
`Patience` allows (`with_retry` sets it from its own arguments; a plain call gets `DEFAULT_PATIENCE`). A
429 the limiter gave up on is marked (`limiter_gave_up`) and is not retried again here, so one policy
applies, whoever does the waiting. A bare Bot (no limiter) is retried here as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter
from loguru import logger

T = TypeVar("T")
FINAL_ATTEMPTS = 6  # a user's answer: worth waiting for through several floods


@dataclass(frozen=True, slots=True)
class Patience:
    """How long a send may be held for flood control: `attempts` in all (the first included) after 429s,
    and at most `max_wait_s` per wait (None: as long as Telegram or the pacing asks). A wait over
    `max_wait_s` is not waited: the call raises TelegramRetryAfter at once."""

    attempts: int = 3
    max_wait_s: float | None = None


DEFAULT_PATIENCE = Patience()
_patience: ContextVar[Patience] = ContextVar("telegram_patience", default=DEFAULT_PATIENCE)
_GAVE_UP = "_send_limiter_gave_up"


def current_patience() -> Patience:
    return _patience.get()


@contextlib.contextmanager
def patience(attempts: int = DEFAULT_PATIENCE.attempts, max_wait_s: float | None = None) -> Iterator[None]:
    """Sends inside the block are held at most this long (see `Patience`)."""
    token = _patience.set(Patience(max(1, attempts), max_wait_s))
    try:
        yield
    finally:
        _patience.reset(token)


def mark_gave_up(exc: TelegramRetryAfter) -> TelegramRetryAfter:
    setattr(exc, _GAVE_UP, True)
    return exc


def limiter_gave_up(exc: TelegramRetryAfter) -> bool:
    """The send limiter already waited and retried as the caller's Patience allowed."""
    return bool(getattr(exc, _GAVE_UP, False))


async def with_retry(call: Callable[[], Awaitable[T]], attempts: int = FINAL_ATTEMPTS, *,
                     max_wait_s: float | None = None, retry_network: bool = True) -> T:
    """`call()`, repeated up to `attempts` times in all; the last failure is raised.

    `max_wait_s` caps each `retry_after` wait (a notice to admins need not hold a task for minutes);
    `retry_network=False` raises a network error at once instead of trying again after a short backoff.
    """
    for attempt in range(1, attempts + 1):
        try:
            with patience(attempts, max_wait_s):
                return await call()
        except TelegramRetryAfter as exc:
            if attempt == attempts or limiter_gave_up(exc):
                raise
            wait = float(exc.retry_after) if max_wait_s is None else min(float(exc.retry_after), max_wait_s)
            logger.info("telegram asks to wait {}s before retrying", exc.retry_after)
            await asyncio.sleep(wait)
        except TelegramNetworkError:
            if not retry_network or attempt == attempts:
                raise
            await asyncio.sleep(min(2.0**attempt * 0.1, 5.0))
    raise AssertionError("unreachable")
