"""Running requests: one at a time per user, /cancel, and the start-up duties that lose nothing.

`JobRegistry` is in memory (one bot process; design.md names Redis for several). At start-up,
`settle_stale` refunds reservations a crash left open without a provider job, and `resume_jobs` polls
the jobs that have one to their end in background tasks (never creating them again).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repo import accounting

if TYPE_CHECKING:
    from bot.services.generation import GenerationService


@dataclass(eq=False)
class RunningJob:
    user_id: int
    task: asyncio.Task[None] | None = None
    request_id: int | None = None
    credits: int = 0
    provider_job: tuple[str, str] | None = None  # (provider, job id) once the provider gave one
    cancelled: bool = False  # by the user (/cancel), as opposed to a shutdown


class JobRegistry:
    def __init__(self) -> None:
        self._running: dict[int, RunningJob] = {}
        self.background: set[asyncio.Task[None]] = set()

    def claim(self, user_id: int) -> RunningJob | None:
        """The user's slot, or None when a request of theirs is already running."""
        if user_id in self._running:
            return None
        job = self._running[user_id] = RunningJob(user_id)
        return job

    def release(self, job: RunningJob) -> None:
        if self._running.get(job.user_id) is job:
            del self._running[job.user_id]

    def get(self, user_id: int) -> RunningJob | None:
        return self._running.get(user_id)

    def cancel(self, user_id: int) -> RunningJob | None:
        """Cancel the user's running request (once); the request's own task refunds it."""
        job = self._running.get(user_id)
        if job is None or job.cancelled:
            return job
        job.cancelled = True
        if job.task is not None:
            job.task.cancel()
        return job

    def spawn(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to a background task until it ends (the loop holds only weak ones)."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop every running request; ones with a provider job stay open, to be resumed next start."""
        tasks = [job.task for job in self._running.values() if job.task is not None] + list(self.background)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), grace_s)


async def settle_stale(sessions: async_sessionmaker[AsyncSession], minutes: int) -> int:
    async with sessions() as session, session.begin():
        settled = await accounting.settle_stale(session, timedelta(minutes=minutes))
    if settled:
        logger.warning("refunded {} request(s) left open by an earlier run", settled)
    return settled


async def resume_jobs(service: GenerationService, sessions: async_sessionmaker[AsyncSession]) -> int:
    """Start polling every job that was running with a provider job id; returns how many."""
    async with sessions() as session:
        items = await accounting.list_resumable(session)
    for item in items:
        logger.info("resuming request {}: {} job {} of user {}", item.request_id, item.provider, item.job_id,
                    item.tg_id)
        service.jobs.spawn(asyncio.create_task(service.resume(item)))
    return len(items)
