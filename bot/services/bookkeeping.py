"""The request log as the generation flow writes it: each step its own short, committed transaction.

A generation can take minutes; on SQLite one writer holds the lock until its commit, so nothing here
keeps a transaction open across a provider call. Writes go through a `WriteQueue` (group commit on
SQLite); a cancellation interrupts the caller, never the write, so the attempt log, the job id that
makes a request resumable, and closing with its refund survive a /cancel arriving mid-write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.writes import WriteQueue
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
    def __init__(self, sessions: async_sessionmaker[AsyncSession], writes: WriteQueue | None = None) -> None:
        self.sessions = sessions
        self.writes = writes or WriteQueue(sessions, batched=False)

    async def _write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self.writes.run(work)

    async def reserve(self, *, tg_id: int, update_id: int | None, chat_id: int, label: str, category: str,
                      prompt: str, credits: int, budget: Budget, first_provider: str | None) -> Reservation:
        return await self._write(lambda s: accounting.reserve_request(
            s, tg_id=tg_id, update_id=update_id, label=label, category=category, prompt=prompt,
            credits=credits, budget=budget, chat_id=chat_id, route_first_provider=first_provider))

    async def attempt(self, request_id: int, attempt: Attempt) -> None:
        await self._write(lambda s: accounting.record_attempt(s, request_id, attempt_record(attempt)))

    async def job(self, request_id: int, provider: str, model: str, job_id: str) -> None:
        await self._write(lambda s: accounting.set_job(s, request_id, provider, model, job_id))

    async def served(self, request_id: int, result: Result, exchange: tuple[int, str, str] | None = None) -> bool:
        """Close as served; with `exchange` (user, question, answer) the chat history is kept in the same
        transaction."""
        async def close(session: AsyncSession) -> bool:
            closed = await accounting.close_served(session, request_id, served_record(result))
            if exchange is not None:
                await history.append_exchange(session, *exchange)
            return closed
        return await self._write(close)

    async def failed(self, request_id: int, kind: str, message: str = "", *, canceled: bool = False) -> bool:
        """Close as failed (or canceled) with a refund; False when it was closed before (no refund then)."""
        return await self._write(lambda s: accounting.close_failed(
            s, request_id, error_kind=kind, message=message[:500], refund=True, canceled=canceled))

    async def history(self, tg_id: int, max_chars: int) -> list[tuple[str, str]]:
        # A read, but through the queue on purpose: on SQLite it rides along with the batch instead of
        # taking one more pooled connection per message (a burst of users churned the pool's overflow).
        # Being a write transaction anyway, it is where a long history is pruned.
        return await self._write(lambda s: history.load_history(s, tg_id, max_chars, prune=True))
