"""Provider jobs that outlive a call: remembered when submitted, listed at start-up to be polled again.

Re-exported by `db.repo.accounting`, where the rest of a request's life is.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OPEN_STATUSES, requests_table
from db.repo.records import ResumableJob

R = requests_table.c


async def mark_running(session: AsyncSession, request_id: int) -> None:
    await session.execute(
        update(requests_table).where(R.id == request_id, R.status == "pending").values(status="running"))


async def set_job(session: AsyncSession, request_id: int, provider: str, model: str, job_id: str) -> None:
    """Remember a submitted provider job, so a restarted bot polls it instead of paying twice."""
    await session.execute(
        update(requests_table).where(R.id == request_id, R.status.in_(OPEN_STATUSES))
        .values(status="running", job_provider=provider, job_model=model, provider_job_id=job_id)
    )


async def list_resumable(session: AsyncSession) -> list[ResumableJob]:
    rows = (await session.execute(
        select(R.id, R.user_id, R.chat_id, R.category, R.label, R.prompt, R.job_provider, R.job_model,
               R.provider_job_id, R.credits_charged, R.created_at)
        .where(R.status == "running", R.provider_job_id.is_not(None)).order_by(R.id)
    )).all()
    return [
        ResumableJob(request_id=r[0], tg_id=r[1], chat_id=r[2], category=r[3], label=r[4], prompt=r[5],
                     provider=r[6] or "", model=r[7] or "", job_id=r[8] or "", credits=r[9], created_at=r[10])
        for r in rows
    ]
