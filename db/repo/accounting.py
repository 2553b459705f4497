"""Credits and the request log: reserve, record attempts, close, settle, resume.

Everything runs in the caller's transaction (repositories never commit). Commit right after
`reserve_request`, before calling a provider: on SQLite one writer holds the lock until its commit.

    reserve_request  insert the request (a re-delivered update id is refused, nothing charged), then ONE
                     conditional UPDATE of the user's balance and budget counters, then the ledger row
    record_attempts  the attempt rows and their rollups (record_attempt: one)
    close_served     served: provider, model, cost, latency, usage, fallback (and any attempts not yet kept)
    close_failed     failed or canceled, refunding the charge exactly once (a second close does nothing)

Core statements on the Core tables: on this path ORM bookkeeping would cost more than the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.dialect import dialect_name
from db.models import (
    MESSAGE_MAX,
    OPEN_STATUSES,
    PROMPT_MAX,
    requests_table,
    users_table,
)
from db.periods import budget_keys, utcnow
from db.repo import rollups, statements
from db.repo.jobs import list_resumable, mark_running, set_job
from db.repo.records import AttemptRecord, Budget, Reservation, ReservationStatus, ResumableJob, ServedRecord

__all__ = [
    "AttemptRecord", "Budget", "Reservation", "ResumableJob", "ServedRecord", "close_failed",
    "close_served", "list_resumable", "mark_running", "record_attempt", "record_attempts", "reserve_request",
    "set_job", "settle_stale",
]

R, U = requests_table.c, users_table.c


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
    conn = await session.connection()
    values = {
        "p_user_id": tg_id, "p_chat_id": chat_id, "p_update_id": update_id, "p_label": label,
        "p_category": str(category), "p_prompt": prompt[:PROMPT_MAX], "p_status": "pending",
        "p_route_first_provider": route_first_provider, "p_credits_charged": credits,
        "p_budget_day_key": day_key, "p_budget_month_key": month_key, "p_created_at": now,
    }
    request_id = (await conn.execute(statements.open_request(dialect_name(conn)), values)).scalar_one_or_none()
    if request_id is None:
        earlier = await conn.scalar(select(R.id).where(R.update_id == update_id))
        return Reservation("duplicate", earlier, await _balance(conn, tg_id))
    balance = await _charge(conn, tg_id, credits, budget, day_key, month_key)
    if balance is None:
        # Nothing was charged; the row goes so that stats count only requests that really ran
        await conn.execute(delete(requests_table).where(R.id == request_id))
        status, balance = await _refusal(conn, tg_id, credits, budget, day_key, month_key)
        return Reservation(status, None, balance)
    if credits:
        await _ledger(conn, tg_id, -credits, "charge", request_id, now)
    return Reservation("ok", request_id, balance)


async def _ledger(
    conn: AsyncConnection, tg_id: int, delta: int, reason: str, request_id: int, now: datetime
) -> None:
    await conn.execute(statements.INSERT_LEDGER, {
        "user_id": tg_id, "delta": delta, "reason": reason, "request_id": request_id, "created_at": now})


async def _charge(
    conn: AsyncConnection, tg_id: int, credits: int, budget: Budget, day_key: int, month_key: int
) -> int | None:
    """The one conditional UPDATE (statements.charge); None when it matched no row."""
    stmt = statements.charge(bool(budget.per_day), bool(budget.per_month))
    values = {"p_user_id": tg_id, "p_credits": credits, "p_day_key": day_key, "p_month_key": month_key,
              "p_per_day": budget.per_day, "p_per_month": budget.per_month}
    balance = (await conn.execute(stmt, values)).scalar_one_or_none()
    return None if balance is None else int(balance)


async def _refusal(
    conn: AsyncConnection, tg_id: int, credits: int, budget: Budget, day_key: int, month_key: int
) -> tuple[ReservationStatus, int]:
    """Why the charge matched no row (read after the fact, only to word the answer)."""
    row = (await conn.execute(
        select(U.credits, U.spent_day_key, U.spent_day, U.spent_month_key, U.spent_month).where(U.id == tg_id)
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


async def _balance(conn: AsyncConnection, tg_id: int) -> int:
    return int(await conn.scalar(select(U.credits).where(U.id == tg_id)) or 0)


async def record_attempts(session: AsyncSession, request_id: int, attempts: Sequence[AttemptRecord]) -> None:
    """Attempt rows and their rollups: two statements however many attempts."""
    await _record_attempts(await session.connection(), request_id, attempts)


async def _record_attempts(
    conn: AsyncConnection, request_id: int, attempts: Sequence[AttemptRecord],
    extra_rows: Sequence[dict[str, Any]] = (),
) -> None:
    rows, rollup_rows = [], list(extra_rows)
    for a in attempts:
        latency = max(0, round(a.latency_ms))
        kind = None if a.kind is None else str(a.kind)
        rows.append({
            "request_id": request_id, "provider": a.provider, "model": a.model, "category": str(a.category),
            "position": a.order, "kind": kind, "http_status": a.http_status, "latency_ms": latency,
            "cost_micros": a.cost_micros, "job_id": a.job_id, "message": a.message[:MESSAGE_MAX] or None,
            "started_at": a.started_at,
        })
        rollup_rows += rollups.attempt_rows(provider=a.provider, category=str(a.category),
                                            started_at=a.started_at, kind=kind, latency_ms=latency,
                                            cost_micros=a.cost_micros)
    if rows:
        await conn.execute(statements.INSERT_ATTEMPTS, rows)
    await rollups.add_provider_rows(conn, rollup_rows)


async def record_attempt(session: AsyncSession, request_id: int, attempt: AttemptRecord) -> None:
    await record_attempts(session, request_id, [attempt])


async def close_served(
    session: AsyncSession, request_id: int, served: ServedRecord, attempts: Sequence[AttemptRecord] = ()
) -> bool:
    """Mark the request served; False when it was already closed (then only `attempts` are kept).

    `attempts` not recorded yet (record_attempt) may be passed here: they share the statements.
    """
    values = {
        "p_id": request_id, "p_provider": served.provider, "p_model": served.model,
        "p_cost_micros": served.cost_micros, "p_latency_ms": max(0, round(served.latency_ms)),
        "p_usage": dict(served.usage), "p_price_snapshot": None if served.prices is None else dict(served.prices),
        "p_first": served.route_first_provider, "p_fallback": served.fallback,
        "p_finished_at": served.finished_at or utcnow(), "p_provider_job_id": served.job_id,
    }
    conn = await session.connection()
    row = (await conn.execute(statements.close_served(), values)).one_or_none()
    if row is None:
        if attempts:
            await _record_attempts(conn, request_id, attempts)
        return False
    user_id, category, created_at, charged, _refunded, _d, _m, fallback = row
    served_counts = rollups.served_rows(provider=served.provider, category=category, created_at=created_at,
                                        fallback=bool(fallback))
    await _record_attempts(conn, request_id, attempts, served_counts)
    await rollups.add_finished_request(
        conn, user_id=user_id, category=category, created_at=created_at, status="served",
        fallback=bool(fallback), charged=charged, refunded=0, cost_micros=served.cost_micros,
    )
    return True


async def close_failed(
    session: AsyncSession, request_id: int, *, error_kind: str, message: str = "", refund: bool = True,
    canceled: bool = False, cost_micros: int = 0, now: datetime | None = None,
    attempts: Sequence[AttemptRecord] = (),
) -> bool:
    """Mark the request failed (or canceled) and refund its credits; False when it was already closed.

    The status change is the guard: only the call that moves the row out of pending/running refunds, so
    the refund happens exactly once however often this is called.
    """
    now = now or utcnow()
    conn = await session.connection()
    if attempts:
        await _record_attempts(conn, request_id, attempts)
    status = "canceled" if canceled else "failed"
    values = {"p_id": request_id, "p_status": status, "p_error_kind": str(error_kind)[:32],
              "p_error_message": message[:MESSAGE_MAX] or None, "p_finished_at": now, "p_cost_micros": cost_micros,
              "p_refund": refund}
    row = (await conn.execute(statements.close_failed(), values)).one_or_none()
    if row is None:
        return False
    user_id, category, created_at, charged, refunded, day_key, month_key, _fallback_flag = row
    if refunded:
        await _refund(conn, user_id, request_id, refunded, day_key, month_key, now)
    await rollups.add_finished_request(
        conn, user_id=user_id, category=category, created_at=created_at, status=status, fallback=False,
        charged=charged, refunded=refunded, cost_micros=cost_micros,
    )
    return True


async def _refund(
    conn: AsyncConnection, user_id: int, request_id: int, credits: int, day_key: int | None,
    month_key: int | None, now: datetime,
) -> None:
    await conn.execute(statements.refund(), {"p_user_id": user_id, "p_credits": credits, "p_day_key": day_key,
                                             "p_month_key": month_key})
    await _ledger(conn, user_id, credits, "refund", request_id, now)


async def settle_stale(session: AsyncSession, older_than: timedelta, now: datetime | None = None) -> int:
    """Fail and refund requests left open without a provider job (a crash mid-call); returns how many."""
    now = now or utcnow()
    ids = (await session.scalars(
        select(R.id).where(R.status.in_(OPEN_STATUSES), R.provider_job_id.is_(None), R.created_at < now - older_than)
    )).all()
    closed = 0
    for request_id in ids:
        closed += await close_failed(session, request_id, error_kind="stale",
                                     message="the bot stopped before the request finished", now=now)
    return closed
