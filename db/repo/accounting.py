"""Credits and the request log: reserve, record attempts, close, settle, resume.

Everything runs in the caller's transaction (repositories never commit). Commit right after
`reserve_request`, before calling a provider: on SQLite one writer holds the lock until its commit.

    reserve_request  insert the request (a re-delivered update id is refused, nothing charged), then ONE
                     conditional UPDATE of the user's balance and budget counters, then the ledger row
    record_attempt   the attempt row and its rollups
    close_served     served: provider, model, cost, latency, usage, fallback
    close_failed     failed or canceled, refunding the charge exactly once (a second close does nothing)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.dialect import insert_for
from db.models import MESSAGE_MAX, OPEN_STATUSES, PROMPT_MAX, Attempt, LedgerEntry, Request, User
from db.periods import budget_keys, utcnow
from db.repo import rollups
from db.repo.records import (
    AttemptRecord,
    Budget,
    Reservation,
    ReservationStatus,
    ResumableJob,
    ServedRecord,
)

__all__ = [
    "AttemptRecord", "Budget", "Reservation", "ResumableJob", "ServedRecord", "close_failed",
    "close_served", "list_resumable", "mark_running", "record_attempt", "reserve_request", "set_job",
    "settle_stale",
]


async def reserve_request(
    session: AsyncSession, *, tg_id: int, update_id: int | None, label: str, category: str, prompt: str,
    credits: int, budget: Budget = Budget(), chat_id: int | None = None,
    route_first_provider: str | None = None, now: datetime | None = None,
) -> Reservation:
    """Open a request and charge `credits` for it, atomically. The user must exist (upsert_user first)."""
    if credits < 0:
        raise ValueError("credits must not be negative")
    now = now or utcnow()
    day_key, month_key = budget_keys(now, budget.tz)
    stmt = insert_for(session, Request).values(
        user_id=tg_id, chat_id=chat_id, update_id=update_id, label=label, category=str(category),
        prompt=prompt[:PROMPT_MAX], status="pending", route_first_provider=route_first_provider,
        credits_charged=credits, budget_day_key=day_key, budget_month_key=month_key, created_at=now,
    ).on_conflict_do_nothing(index_elements=["update_id"]).returning(Request.id)
    request_id = (await session.execute(stmt)).scalar_one_or_none()
    if request_id is None:
        earlier = await session.scalar(select(Request.id).where(Request.update_id == update_id))
        return Reservation("duplicate", earlier, await _balance(session, tg_id))
    balance = await _charge(session, tg_id, credits, budget, day_key, month_key)
    if balance is None:
        # Nothing was charged; the row goes so that stats count only requests that really ran
        await session.execute(delete(Request).where(Request.id == request_id))
        status, balance = await _refusal(session, tg_id, credits, budget, day_key, month_key)
        return Reservation(status, None, balance)
    if credits:
        session.add(LedgerEntry(user_id=tg_id, delta=-credits, reason="charge", request_id=request_id,
                                created_at=now))
        await session.flush()
    return Reservation("ok", request_id, balance)


async def _charge(
    session: AsyncSession, tg_id: int, credits: int, budget: Budget, day_key: int, month_key: int
) -> int | None:
    """The one conditional UPDATE: balance, day and month budgets checked and charged together."""
    spent_day = case((User.spent_day_key == day_key, User.spent_day), else_=0)
    spent_month = case((User.spent_month_key == month_key, User.spent_month), else_=0)
    conditions = [User.id == tg_id, User.credits >= credits]
    if budget.per_day:
        conditions.append(spent_day + credits <= budget.per_day)
    if budget.per_month:
        conditions.append(spent_month + credits <= budget.per_month)
    stmt = (
        update(User).where(and_(*conditions))
        .values(credits=User.credits - credits, spent_day=spent_day + credits, spent_day_key=day_key,
                spent_month=spent_month + credits, spent_month_key=month_key)
        .returning(User.credits)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def _refusal(
    session: AsyncSession, tg_id: int, credits: int, budget: Budget, day_key: int, month_key: int
) -> tuple[ReservationStatus, int]:
    """Why the charge matched no row (read after the fact, only to word the answer)."""
    row = (await session.execute(
        select(User.credits, User.spent_day_key, User.spent_day, User.spent_month_key, User.spent_month)
        .where(User.id == tg_id)
    )).one_or_none()
    if row is None:
        raise LookupError(f"unknown user {tg_id}")
    balance, d_key, d_spent, m_key, m_spent = row
    if balance < credits:
        return "insufficient", balance
    if budget.per_day and (d_spent if d_key == day_key else 0) + credits > budget.per_day:
        return "budget_day", balance
    if budget.per_month and (m_spent if m_key == month_key else 0) + credits > budget.per_month:
        return "budget_month", balance
    return "insufficient", balance  # the balance moved between the UPDATE and this read


async def _balance(session: AsyncSession, tg_id: int) -> int:
    return int(await session.scalar(select(User.credits).where(User.id == tg_id)) or 0)


async def mark_running(session: AsyncSession, request_id: int) -> None:
    await session.execute(
        update(Request).where(Request.id == request_id, Request.status == "pending").values(status="running")
    )


async def set_job(session: AsyncSession, request_id: int, provider: str, model: str, job_id: str) -> None:
    """Remember a submitted provider job, so a restarted bot polls it instead of paying twice."""
    await session.execute(
        update(Request).where(Request.id == request_id, Request.status.in_(OPEN_STATUSES))
        .values(status="running", job_provider=provider, job_model=model, provider_job_id=job_id)
    )


async def record_attempt(session: AsyncSession, request_id: int, attempt: AttemptRecord) -> None:
    latency = max(0, round(attempt.latency_ms))
    kind = None if attempt.kind is None else str(attempt.kind)
    session.add(Attempt(
        request_id=request_id, provider=attempt.provider, model=attempt.model, category=str(attempt.category),
        position=attempt.order, kind=kind, http_status=attempt.http_status, latency_ms=latency,
        cost_micros=attempt.cost_micros, job_id=attempt.job_id, message=attempt.message[:MESSAGE_MAX] or None,
        started_at=attempt.started_at,
    ))
    await session.flush()
    await rollups.add_attempt(
        session, provider=attempt.provider, category=str(attempt.category), started_at=attempt.started_at,
        kind=kind, latency_ms=latency, cost_micros=attempt.cost_micros,
    )


_CLOSED_ROW = (Request.user_id, Request.category, Request.created_at, Request.credits_charged,
               Request.credits_refunded, Request.budget_day_key, Request.budget_month_key)


def _fallback(served: ServedRecord) -> Any:
    """Served by someone other than the route's first provider (given now, or stored at reserve time)."""
    if served.fallback is not None:
        return served.fallback
    if served.route_first_provider is not None:
        return served.route_first_provider != served.provider
    stored = Request.route_first_provider
    return case((stored.is_not(None) & (stored != served.provider), True), else_=False)


async def close_served(session: AsyncSession, request_id: int, served: ServedRecord) -> bool:
    """Mark the request served; False when it was already closed (nothing changes then)."""
    first = served.route_first_provider
    stmt = (
        update(Request).where(Request.id == request_id, Request.status.in_(OPEN_STATUSES))
        .values(status="served", provider=served.provider, model=served.model, cost_micros=served.cost_micros,
                latency_ms=max(0, round(served.latency_ms)), usage=dict(served.usage),
                price_snapshot=None if served.prices is None else dict(served.prices),
                route_first_provider=Request.route_first_provider if first is None else first,
                fallback=_fallback(served), finished_at=served.finished_at or utcnow(),
                provider_job_id=served.job_id or Request.provider_job_id)
        .returning(*_CLOSED_ROW, Request.fallback)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return False
    user_id, category, created_at, charged, _refunded, _d, _m, was_fallback = row
    await rollups.add_finished_request(
        session, user_id=user_id, category=category, created_at=created_at, status="served",
        provider=served.provider, fallback=bool(was_fallback), charged=charged, refunded=0,
        cost_micros=served.cost_micros,
    )
    return True


async def close_failed(
    session: AsyncSession, request_id: int, *, error_kind: str, message: str = "", refund: bool = True,
    canceled: bool = False, cost_micros: int = 0, now: datetime | None = None,
) -> bool:
    """Mark the request failed (or canceled) and refund its credits; False when it was already closed.

    The status change is the guard: only the call that moves the row out of pending/running refunds, so
    the refund happens exactly once however often this is called.
    """
    now = now or utcnow()
    stmt = (
        update(Request).where(Request.id == request_id, Request.status.in_(OPEN_STATUSES))
        .values(status="canceled" if canceled else "failed", error_kind=str(error_kind)[:32],
                error_message=message[:MESSAGE_MAX] or None, finished_at=now, cost_micros=cost_micros,
                credits_refunded=Request.credits_charged if refund else 0)
        .returning(*_CLOSED_ROW)
        .execution_options(synchronize_session=False)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return False
    user_id, category, created_at, charged, refunded, day_key, month_key = row
    if refunded:
        await _refund(session, user_id, request_id, refunded, day_key, month_key, now)
    await rollups.add_finished_request(
        session, user_id=user_id, category=category, created_at=created_at,
        status="canceled" if canceled else "failed", provider=None, fallback=False, charged=charged,
        refunded=refunded, cost_micros=cost_micros,
    )
    return True


async def _refund(
    session: AsyncSession, user_id: int, request_id: int, credits: int, day_key: int | None,
    month_key: int | None, now: datetime,
) -> None:
    # Give the budget back too, when the counters still count the period the charge was made in
    back_day = case((User.spent_day_key == day_key, User.spent_day - credits), else_=User.spent_day)
    back_month = case((User.spent_month_key == month_key, User.spent_month - credits), else_=User.spent_month)
    await session.execute(
        update(User).where(User.id == user_id)
        .values(credits=User.credits + credits, spent_day=back_day, spent_month=back_month)
        .execution_options(synchronize_session=False)
    )
    session.add(LedgerEntry(user_id=user_id, delta=credits, reason="refund", request_id=request_id,
                            created_at=now))
    await session.flush()


async def settle_stale(session: AsyncSession, older_than: timedelta, now: datetime | None = None) -> int:
    """Fail and refund requests left open without a provider job (a crash mid-call); returns how many."""
    now = now or utcnow()
    ids = (await session.scalars(
        select(Request.id).where(Request.status.in_(OPEN_STATUSES), Request.provider_job_id.is_(None),
                                 Request.created_at < now - older_than)
    )).all()
    closed = 0
    for request_id in ids:
        closed += await close_failed(session, request_id, error_kind="stale",
                                     message="the bot stopped before the request finished", now=now)
    return closed


async def list_resumable(session: AsyncSession) -> list[ResumableJob]:
    rows = (await session.scalars(
        select(Request).where(Request.status == "running", Request.provider_job_id.is_not(None))
        .order_by(Request.id)
    )).all()
    return [
        ResumableJob(
            request_id=r.id, tg_id=r.user_id, chat_id=r.chat_id, category=r.category, label=r.label,
            prompt=r.prompt, provider=r.job_provider or "", model=r.job_model or "",
            job_id=r.provider_job_id or "", credits=r.credits_charged, created_at=r.created_at,
        )
        for r in rows
    ]
