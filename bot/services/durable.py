"""Writes that survive a failing database: each one a committed transaction, tried again with backoff
while the failure is the database's (locked, disk full, connection lost), and `WriteFailed` when it
still fails, logged at ERROR with the request id. A failure of the statement itself (a bug) is raised
at once: trying again cannot fix it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.redaction import scrub
from bot.services.writes import WriteQueue
from db.repo.records import AttemptRecord, ServedRecord
from providers import Attempt, Result

T = TypeVar("T")
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)


class WriteFailed(Exception):
    """A database write kept failing."""


def transient(exc: BaseException) -> bool:
    """A failure of the database, not of the statement: worth trying again."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, (OperationalError, InterfaceError))
    return isinstance(exc, (OSError, TimeoutError))


def attempt_record(attempt: Attempt) -> AttemptRecord:
    return AttemptRecord(
        provider=attempt.provider, model=attempt.model, category=str(attempt.category), order=attempt.order,
        kind=None if attempt.kind is None else str(attempt.kind), http_status=attempt.status,
        latency_ms=attempt.latency_ms, cost_micros=attempt.cost_micros, job_id=attempt.job_id,
        message=scrub(attempt.message), started_at=attempt.started_at)


def served_record(result: Result) -> ServedRecord:
    return ServedRecord(provider=result.provider, model=result.model, cost_micros=result.cost_micros,
                        latency_ms=result.latency_ms, usage=result.usage.as_dict(), job_id=result.job_id)


class DurableWrites:
    def __init__(self, writes: WriteQueue, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.writes = writes
        self.retry_delays = retry_delays

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]], request_id: int | None = None) -> T:
        """One committed transaction, tried again with backoff while the database fails."""
        for tries, delay in enumerate((*self.retry_delays, None), start=1):
            try:
                return await self.writes.run(work)
            except Exception as exc:
                if not transient(exc):
                    raise
                log = logger.bind(request_id=request_id)
                if delay is None:
                    log.opt(exception=exc).error("request {}: a database write failed {} times ({})",
                                                 request_id, tries, type(exc).__name__)
                    raise WriteFailed(request_id) from exc
                log.warning("request {}: database write failed ({}); retrying in {:g} s", request_id,
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")
