"""Group commit for SQLite: the writes that arrive while one transaction runs share the next one.

SQLite has one writer at a time. Left to its busy handler, a burst of users made writers sleep up to
100 ms between tries and fail with "database is locked" after busy_timeout; serialised one by one, every
write still paid its own BEGIN/COMMIT and several hops to the driver's thread, each waiting a turn of a
busy event loop. Batched, a burst of N writes costs a few transactions. Every caller still awaits its
own write's commit, so "committed as it happens" holds.

A batch runs optimistically in one transaction; if any write in it raises, the batch is rolled back and
each write is retried alone, so one failure never takes the others down. A write whose caller was
cancelled still happens (the queue, not the caller, runs it): that is what makes the attempt log, job
ids and refunds survive /cancel. Other databases take concurrent writers well: there each write is its
own transaction, run at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]
MAX_BATCH = 500


class WriteQueue:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, batched: bool) -> None:
        self.sessions = sessions
        self.batched = batched
        self._pending: list[tuple[Work, asyncio.Future[Any]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @classmethod
    def for_url(cls, sessions: async_sessionmaker[AsyncSession], url: str) -> WriteQueue:
        return cls(sessions, batched=make_url(url).get_backend_name() == "sqlite")

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work(session)` in a committed transaction; returns once it is committed."""
        if not self.batched:
            return await asyncio.shield(asyncio.ensure_future(self._alone(work)))
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await asyncio.shield(future)

    async def _alone(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.sessions() as session, session.begin():
            return await work(session)

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await self._together(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc=exc)
                    continue
                logger.debug("a batch of {} writes failed ({}); retrying one by one", len(batch),
                             type(exc).__name__)
                for work, future in batch:
                    try:
                        _settle(future, await self._alone(work))
                    except Exception as single:
                        _settle(future, exc=single)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result)

    async def _together(self, batch: list[tuple[Work, asyncio.Future[Any]]]) -> list[Any]:
        async with self.sessions() as session, session.begin():
            return [await work(session) for work, _ in batch]

    async def aclose(self) -> None:
        """Let the writes already submitted finish."""
        if self._drainer is not None:
            await asyncio.gather(self._drainer, return_exceptions=True)


def _settle(future: asyncio.Future[Any], result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # nobody waits any more; the write happened (or failed) all the same
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
