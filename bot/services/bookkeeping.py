"""The request log as the generation flow writes it: each step its own short, committed transaction.

A generation can take minutes; on SQLite one writer holds the lock until its commit, so nothing here
keeps a transaction open across a provider call. The writes that must survive a /cancel arriving
mid-write (the attempt log, the job id that makes a request resumable, closing and refunding) are
shielded: a cancellation interrupts the caller, not the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repo import accounting, history
from db.repo.records import AttemptRecord, Budget, Reservation, ServedRecord
from providers.errors import Attempt
from providers.result import Result

T = TypeVar("T")


def attempt_record(attempt: Attempt) -> AttemptRecord:
    return AttemptRecord(
        provider=attempt.provider, model=attempt.model, category=str(attempt.category), order=attempt.order,
        kind=None if attempt.kind is None else str(attempt.kind), http_status=attempt.status,
        latency_ms=attempt.latency_ms, cost_micros=attempt.cost_micros, job_id=attempt.job_id,
        message=attempt.message, started_at=attempt.started_at)


def served_record(result: Result) -> ServedRecord:
    return ServedRecord(provider=result.provider, model=result.model, cost_micros=result.cost_micros,
                        latency_ms=result.latency_ms, usage=result.usage.as_dict(), job_id=result.job_id)


class RequestBook:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def _write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.sessions() as session, session.begin():
            return await work(session)

    async def _shielded(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await asyncio.shield(asyncio.ensure_future(self._write(work)))

    async def reserve(self, *, tg_id: int, update_id: int | None, chat_id: int, label: str, category: str,
                      prompt: str, credits: int, budget: Budget, first_provider: str | None) -> Reservation:
        return await self._write(lambda s: accounting.reserve_request(
            s, tg_id=tg_id, update_id=update_id, label=label, category=category, prompt=prompt,
            credits=credits, budget=budget, chat_id=chat_id, route_first_provider=first_provider))

    async def attempt(self, request_id: int, attempt: Attempt) -> None:
        await self._shielded(lambda s: accounting.record_attempt(s, request_id, attempt_record(attempt)))

    async def job(self, request_id: int, provider: str, model: str, job_id: str) -> None:
        await self._shielded(lambda s: accounting.set_job(s, request_id, provider, model, job_id))

    async def served(self, request_id: int, result: Result) -> bool:
        return await self._shielded(lambda s: accounting.close_served(s, request_id, served_record(result)))

    async def failed(self, request_id: int, kind: str, message: str = "", *, canceled: bool = False) -> bool:
        """Close as failed (or canceled) with a refund; False when it was closed before (no refund then)."""
        return await self._shielded(lambda s: accounting.close_failed(
            s, request_id, error_kind=kind, message=message[:500], refund=True, canceled=canceled))

    async def exchange(self, tg_id: int, question: str, answer: str) -> None:
        async def both(session: AsyncSession) -> None:
            await history.append_message(session, tg_id, "user", question)
            await history.append_message(session, tg_id, "assistant", answer)
        await self._shielded(both)

    async def history(self, tg_id: int, max_chars: int) -> list[tuple[str, str]]:
        async with self.sessions() as session:
            return await history.load_history(session, tg_id, max_chars)
