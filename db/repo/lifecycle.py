"""The life of a request as the database keeps it: the only module that writes a request's status.

Every transition is one conditional UPDATE guarded by the current state (and, for an owner's own
transitions, by `owner`), with its ledger row and rollups in the same transaction: the caller's, since
repositories never commit. A terminal state is reached once, so a refund happens once.
Its money moves (charge, refusal reason, ledger row) are in `db.repo.charges`, its attempt log in
`db.repo.attempts`.

    reserve_request   -> running, held by `owner` until `lease_until` (start=False: reserved, for a worker),
                         or refused (a row with its reason, nothing charged), or a duplicate update (nothing)
    refuse            -> refused before any charge (busy: one request at a time)
    start             reserved -> running, taking the lease
    renew_leases      an owner pushes its leases on; set_job keeps a provider job id (resumable)
    mark_delivering   the answer is about to go out: from now on /cancel refunds nothing
    mark_delivered    part of the answer reached the user: no refund any more, whatever happens next
    close_served      -> served, charge kept
    close_failed      -> failed or canceled by its owner; refunded if and only if nothing was delivered
    cancel_open       -> canceled by the user, whoever owns it, before delivering: refunded
    orphans/take_over open requests whose lease ran out; one guarded UPDATE hands one to a new owner
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.dialect import dialect_name
from db.models import MESSAGE_MAX, OPEN_STATUSES, PROMPT_MAX, requests_table
from db.periods import budget_keys, utcnow
from db.repo import attempts as attempts_log
from db.repo import charges, rollups, statements
from db.repo.attempts import record_attempts as record_attempts  # the attempt log is part of the life
from db.repo.records import (
    AttemptRecord,
    Budget,
    CancelOutcome,
    Closed,
    Orphan,
    Reservation,
    ServedRecord,
)

R = requests_table.c


async def reserve_request(
    session: AsyncSession, *, owner: str, lease_until: datetime, tg_id: int, update_id: int | None, label: str,
    category: str, prompt: str, credits: int, budget: Budget = Budget(), chat_id: int | None = None,
    thread_id: int | None = None, route_first_provider: str | None = None, now: datetime | None = None,
    start: bool = True, exclusive: bool = False,
) -> Reservation:
    """Open a request and charge `credits` for it, atomically. The user must exist (upsert_user first).
    `chat_id` and `thread_id` (a forum topic) say where its answer goes, also when it is resumed.

    `exclusive`: refused as busy (a row, nothing charged) while the user has an open request. One process
    knows that from memory; fronts of the distributed mode ask the database (under a per-user lock that
    serializes their reservations, so two fronts cannot both see none)."""
    if credits < 0:
        raise ValueError("credits must not be negative")
    now = now or utcnow()
    day_key, month_key = budget_keys(now, budget.tz)
    conn = await session.connection()
    if exclusive and await conn.scalar(select(R.id).where(R.user_id == tg_id, R.status.in_(OPEN_STATUSES)).limit(1)):
        refused = await refuse(session, tg_id=tg_id, update_id=update_id, label=label, category=category,
                               prompt=prompt, reason="busy", chat_id=chat_id, now=now)
        if refused is None:
            earlier = await conn.scalar(select(R.id).where(R.update_id == update_id))
            return Reservation("duplicate", earlier, await charges.balance(conn, tg_id))
        return Reservation("busy", refused, await charges.balance(conn, tg_id))
    request_id = await _insert(
        conn, tg_id=tg_id, chat_id=chat_id, update_id=update_id, label=label, category=category, prompt=prompt,
        now=now, status="running" if start else "reserved", route_first_provider=route_first_provider,
        credits_charged=credits, budget_day_key=day_key, budget_month_key=month_key, owner=owner,
        lease_until=lease_until, thread_id=thread_id)
    if request_id is None:
        earlier = await conn.scalar(select(R.id).where(R.update_id == update_id))
        return Reservation("duplicate", earlier, await charges.balance(conn, tg_id))
    balance = await charges.charge(conn, tg_id, credits, budget, day_key, month_key)
    if balance is None:
        status, balance = await charges.refusal(conn, tg_id, credits, budget, day_key, month_key)
        await conn.execute(statements.refuse_reserved(), {"p_id": request_id, "p_error_kind": status,
                                                          "p_finished_at": now})
        await rollups.add_refused(conn, category=str(category), created_at=now)
        return Reservation(status, request_id, balance)
    if credits:
        await charges.ledger(conn, tg_id, -credits, "charge", request_id, now)
    return Reservation("ok", request_id, balance)


async def _insert(
    conn: AsyncConnection, *, tg_id: int, chat_id: int | None, update_id: int | None, label: str, category: str,
    prompt: str, now: datetime, **columns: Any,
) -> int | None:
    """Insert a request row (the columns not given are NULL); its id, or None when the update id is known."""
    values: dict[str, Any] = {f"p_{name}": None for name in statements.OPEN_ROW_COLUMNS}
    values.update({f"p_{name}": value for name, value in columns.items()})
    values.update({"p_user_id": tg_id, "p_chat_id": chat_id, "p_update_id": update_id, "p_label": label,
                   "p_category": str(category), "p_prompt": prompt[:PROMPT_MAX], "p_created_at": now})
    request_id = (await conn.execute(statements.open_request(dialect_name(conn)), values)).scalar_one_or_none()
    return None if request_id is None else int(request_id)


async def refuse(
    session: AsyncSession, *, tg_id: int, update_id: int | None, label: str, category: str, prompt: str,
    reason: str, chat_id: int | None = None, now: datetime | None = None,
) -> int | None:
    """A request turned away before any charge (e.g. busy); the new row's id, None for a duplicate update."""
    now = now or utcnow()
    conn = await session.connection()
    request_id = await _insert(
        conn, tg_id=tg_id, chat_id=chat_id, update_id=update_id, label=label, category=category, prompt=prompt,
        now=now, status="refused", credits_charged=0, error_kind=reason[:32], finished_at=now)
    if request_id is not None:
        await rollups.add_refused(conn, category=str(category), created_at=now)
    return request_id


# --- while it runs ---------------------------------------------------------------------------------

async def start(session: AsyncSession, request_id: int, owner: str, lease_until: datetime) -> bool:
    """reserved -> running: `owner` takes the request and its lease."""
    result = await session.execute(
        update(requests_table).where(R.id == request_id, R.status == "reserved")
        .values(status="running", owner=owner, lease_until=lease_until))
    return bool(getattr(result, "rowcount", 0))


async def renew_leases(session: AsyncSession, owner: str, request_ids: Sequence[int], lease_until: datetime) -> int:
    """Push the leases `owner` holds on these open requests to `lease_until`; how many it still holds."""
    if not request_ids:
        return 0
    result = await session.execute(statements.renew_leases(), {
        "p_owner": owner, "p_ids": list(request_ids), "p_lease_until": lease_until})
    return int(getattr(result, "rowcount", 0))


async def set_job(session: AsyncSession, request_id: int, owner: str, provider: str, model: str, job_id: str) -> bool:
    """Remember a submitted provider job, so whoever finishes the request polls it instead of paying twice."""
    result = await session.execute(
        update(requests_table).where(R.id == request_id, R.status.in_(OPEN_STATUSES), R.owner == owner)
        .values(status="running", job_provider=provider, job_model=model, provider_job_id=job_id))
    return bool(getattr(result, "rowcount", 0))


async def mark_delivering(session: AsyncSession, request_id: int, owner: str, now: datetime | None = None) -> bool:
    """The owner is about to send the answer; False when the request is no longer its own to deliver
    (canceled, or taken over): then nothing may be sent."""
    return await _mark(session, "delivering_at", request_id, owner, now)


async def mark_delivered(session: AsyncSession, request_id: int, owner: str, now: datetime | None = None) -> bool:
    """Part of the answer reached the user: the charge is kept however the request ends."""
    return await _mark(session, "delivered_at", request_id, owner, now)


async def _mark(session: AsyncSession, column: str, request_id: int, owner: str, now: datetime | None) -> bool:
    conn = await session.connection()
    result = await conn.execute(statements.mark_delivery(column), {
        "p_id": request_id, "p_owner": owner, f"p_{column}": now or utcnow()})
    return bool(getattr(result, "rowcount", 0))


# --- terminal transitions -------------------------------------------------------------------------

async def close_served(
    session: AsyncSession, request_id: int, owner: str, served: ServedRecord, attempts: Sequence[AttemptRecord] = ()
) -> bool:
    """running -> served (the charge is kept); False when it was not open and `owner`'s (then only
    `attempts`, the ones not recorded yet, are kept)."""
    values = {
        "p_id": request_id, "p_owner": owner, "p_provider": served.provider, "p_model": served.model,
        "p_cost_micros": served.cost_micros, "p_latency_ms": max(0, round(served.latency_ms)),
        "p_usage": dict(served.usage), "p_price_snapshot": None if served.prices is None else dict(served.prices),
        "p_first": served.route_first_provider, "p_fallback": served.fallback,
        "p_finished_at": served.finished_at or utcnow(), "p_provider_job_id": served.job_id,
    }
    conn = await session.connection()
    row = (await conn.execute(statements.close_served(), values)).one_or_none()
    if row is None:
        await attempts_log.record_on(conn, request_id, attempts)
        return False
    user_id, category, created_at, charged, _refunded, _d, _m, fallback, _label = row
    served_counts = rollups.served_rows(provider=served.provider, category=category, created_at=created_at,
                                        fallback=bool(fallback)) if served.provider else []
    await attempts_log.record_on(conn, request_id, attempts, served_counts)
    await rollups.add_finished_request(
        conn, user_id=user_id, category=category, created_at=created_at, status="served",
        fallback=bool(fallback), charged=charged, refunded=0, cost_micros=served.cost_micros,
    )
    return True


async def close_failed(
    session: AsyncSession, request_id: int, owner: str, *, error_kind: str, message: str = "",
    canceled: bool = False, cost_micros: int = 0, now: datetime | None = None,
    attempts: Sequence[AttemptRecord] = (), delivered: bool = False,
) -> Closed | None:
    """running -> failed (or canceled), refunding the charge unless part of the answer was delivered
    (`delivered`: the owner knows it was, though writing it down failed); None when it was not open and
    `owner`'s (nothing changes, no refund)."""
    now = now or utcnow()
    conn = await session.connection()
    await attempts_log.record_on(conn, request_id, attempts)
    status = "canceled" if canceled else "failed"
    values = {"p_id": request_id, "p_owner": owner, "p_status": status, "p_error_kind": str(error_kind)[:32],
              "p_error_message": message[:MESSAGE_MAX] or None, "p_finished_at": now, "p_cost_micros": cost_micros,
              "p_delivered": delivered}
    row = (await conn.execute(statements.close_failed(), values)).one_or_none()
    if row is None:
        return None
    return await _settle(conn, request_id, status, row, cost_micros, now)


async def cancel_open(session: AsyncSession, tg_id: int, now: datetime | None = None) -> CancelOutcome:
    """The user's /cancel: every open request of theirs whose answer has not started to go out becomes
    canceled and is refunded, whoever works on it. Says what happened, and what is still being delivered."""
    now = now or utcnow()
    conn = await session.connection()
    values = {"p_user_id": tg_id, "p_status": "canceled", "p_error_kind": "canceled",
              "p_error_message": "canceled by the user", "p_finished_at": now, "p_cost_micros": 0,
              "p_delivered": False}
    rows = (await conn.execute(statements.cancel_open(), values)).all()
    closed = [await _settle(conn, row[0], "canceled", row[1:], 0, now) for row in rows]
    delivering = (await conn.scalars(
        select(R.id).where(R.user_id == tg_id, R.status.in_(OPEN_STATUSES)))).all()
    return CancelOutcome(tuple(closed), tuple(int(i) for i in delivering))


async def _settle(conn: AsyncConnection, request_id: int, status: str, row: Any, cost_micros: int,
                  now: datetime) -> Closed:
    """The ledger and rollups of a failed or canceled request, in the transaction of its transition."""
    user_id, category, created_at, charged, refunded, day_key, month_key, _fallback, label = row
    if refunded:
        await conn.execute(statements.refund(), {"p_user_id": user_id, "p_credits": refunded,
                                                 "p_day_key": day_key, "p_month_key": month_key})
        await charges.ledger(conn, user_id, refunded, "refund", request_id, now)
    await rollups.add_finished_request(
        conn, user_id=user_id, category=category, created_at=created_at, status=status, fallback=False,
        charged=charged, refunded=refunded, cost_micros=cost_micros,
    )
    return Closed(request_id, status, int(refunded), int(charged), str(category), str(label))


# --- orphans --------------------------------------------------------------------------------------

async def orphans(session: AsyncSession, now: datetime, gone_owners: Sequence[str] = ()) -> list[Orphan]:
    """Open requests whose lease ran out, or whose owner is known to be gone (a dead process)."""
    lapsed = or_(R.lease_until.is_(None), R.lease_until < now)
    if gone_owners:
        lapsed = or_(lapsed, R.owner.in_(list(gone_owners)))
    rows = (await session.execute(
        select(R.id.label("request_id"), R.user_id.label("tg_id"), R.chat_id, R.category, R.label, R.prompt,
               R.owner, R.lease_until, R.job_provider, R.job_model, R.provider_job_id.label("job_id"),
               R.credits_charged.label("credits"), R.delivered_at, R.created_at, R.thread_id)
        .where(R.status.in_(OPEN_STATUSES), lapsed).order_by(R.id))).all()
    return [Orphan(**row._asdict()) for row in rows]


async def open_owners(session: AsyncSession) -> list[str]:
    """Every owner that holds an open request now."""
    return [str(o) for o in (await session.scalars(
        select(R.owner).where(R.status.in_(OPEN_STATUSES), R.owner.is_not(None)).distinct())).all()]


async def take_over(session: AsyncSession, orphan: Orphan, owner: str, lease_until: datetime) -> bool:
    """The orphan's lease passes to `owner`, if nobody took it or renewed it since it was read."""
    same_owner = R.owner.is_(None) if orphan.owner is None else R.owner == orphan.owner
    same_lease = R.lease_until.is_(None) if orphan.lease_until is None else R.lease_until == orphan.lease_until
    result = await session.execute(
        update(requests_table).where(and_(R.id == orphan.request_id, R.status.in_(OPEN_STATUSES), same_owner,
                                          same_lease))
        .values(owner=owner, lease_until=lease_until, status="running"))
    return bool(getattr(result, "rowcount", 0))
