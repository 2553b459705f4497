"""The statements of the request-logging path, built once with bind parameters.

Building a SQLAlchemy statement (coercing every value, generating its cache key) cost more CPU than SQLite
spent running it, several times per logged request. These are built once, per dialect where the upsert
syntax is the dialect's, and `db/repo/lifecycle.py` executes them with a dict of values.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Table, bindparam, case, func, insert, update

from db.dialect import insert_or_skip
from db.models import OPEN_STATUSES, attempts_table, ledger_table, requests_table, users_table

R, U = requests_table.c, users_table.c

CLOSED_ROW = (R.user_id, R.category, R.created_at, R.credits_charged, R.credits_refunded, R.budget_day_key,
              R.budget_month_key, R.fallback, R.label)
OPEN_ROW_COLUMNS = ("user_id", "chat_id", "thread_id", "update_id", "label", "category", "prompt", "status",
                    "route_first_provider", "credits_charged", "budget_day_key", "budget_month_key", "created_at",
                    "owner", "lease_until", "error_kind", "finished_at")

INSERT_LEDGER = insert(ledger_table)
INSERT_ATTEMPTS = insert(attempts_table)


def _col(table: Table, name: str) -> Any:
    """A bind parameter `p_<name>` typed like the column, so dates and JSON are converted as usual."""
    return bindparam(f"p_{name}", type_=table.c[name].type)


@lru_cache(maxsize=4)
def open_request(dialect: str) -> Any:
    """Insert a request unless its update id is known: RETURNING gives the id, or nothing (duplicate)."""
    return (insert_or_skip(dialect, requests_table, "update_id")
            .values({name: _col(requests_table, name) for name in OPEN_ROW_COLUMNS}).returning(R.id))


@lru_cache(maxsize=4)
def charge(per_day: bool, per_month: bool) -> Any:
    """The one conditional UPDATE: balance, day and month budgets checked and charged together.

    Counters of an older day or month count as zero and restart inside the same statement.
    """
    credits = bindparam("p_credits", type_=BigInteger)
    day_key, month_key = bindparam("p_day_key", type_=Integer), bindparam("p_month_key", type_=Integer)
    spent_day = case((U.spent_day_key == day_key, U.spent_day), else_=0)
    spent_month = case((U.spent_month_key == month_key, U.spent_month), else_=0)
    conditions = [U.id == bindparam("p_user_id", type_=BigInteger), U.credits >= credits]
    if per_day:
        conditions.append(spent_day + credits <= bindparam("p_per_day", type_=BigInteger))
    if per_month:
        conditions.append(spent_month + credits <= bindparam("p_per_month", type_=BigInteger))
    return (update(users_table).where(*conditions)
            .values(credits=U.credits - credits, spent_day=spent_day + credits, spent_day_key=day_key,
                    spent_month=spent_month + credits, spent_month_key=month_key)
            .returning(U.credits))


def _owned_open_request() -> Any:
    """The guard of every owner's transition: this request, still open, still held by this owner."""
    return ((R.id == bindparam("p_id", type_=BigInteger)) & R.status.in_(OPEN_STATUSES)
            & (R.owner == bindparam("p_owner", type_=String)))


@lru_cache(maxsize=1)
def close_served() -> Any:
    """Served. The route's first provider given now wins over the one stored at reserve time; an explicit
    fallback flag wins over the comparison with it."""
    provider = _col(requests_table, "provider")
    first = func.coalesce(bindparam("p_first", type_=String), R.route_first_provider)
    compared = case((first.is_not(None) & (first != provider), True), else_=False)
    return (update(requests_table).where(_owned_open_request())
            .values(status="served", lease_until=None,
                    delivered_at=func.coalesce(R.delivered_at, _col(requests_table, "finished_at")),
                    provider=provider, model=_col(requests_table, "model"),
                    cost_micros=_col(requests_table, "cost_micros"), latency_ms=_col(requests_table, "latency_ms"),
                    usage=_col(requests_table, "usage"), price_snapshot=_col(requests_table, "price_snapshot"),
                    route_first_provider=first,
                    fallback=func.coalesce(bindparam("p_fallback", type_=Boolean), compared),
                    finished_at=_col(requests_table, "finished_at"),
                    provider_job_id=func.coalesce(_col(requests_table, "provider_job_id"), R.provider_job_id))
            .returning(*CLOSED_ROW))


def _failed_values() -> dict[str, Any]:
    # The refund rule in one place: the charge goes back if and only if nothing reached the user, as the
    # row says or as the closing owner knows (`p_delivered`: its own record of it could not be written)
    delivered = bindparam("p_delivered", type_=Boolean)
    finished = _col(requests_table, "finished_at")
    refunded = case((R.delivered_at.is_(None) & ~delivered, R.credits_charged), else_=0)
    return {"status": _col(requests_table, "status"), "error_kind": _col(requests_table, "error_kind"),
            "error_message": _col(requests_table, "error_message"), "lease_until": None,
            "finished_at": finished, "cost_micros": _col(requests_table, "cost_micros"),
            "credits_refunded": refunded,
            "delivered_at": case((delivered, func.coalesce(R.delivered_at, finished)), else_=R.delivered_at)}


@lru_cache(maxsize=1)
def close_failed() -> Any:
    """Failed or canceled by the owner; refunded unless part of the answer was delivered."""
    return update(requests_table).where(_owned_open_request()).values(_failed_values()).returning(*CLOSED_ROW)


@lru_cache(maxsize=1)
def cancel_open() -> Any:
    """Canceled by the user, whoever owns it: only before its answer started to go out (delivering_at)."""
    return (update(requests_table)
            .where(R.user_id == bindparam("p_user_id", type_=BigInteger), R.status.in_(OPEN_STATUSES),
                   R.delivering_at.is_(None), R.delivered_at.is_(None))
            .values(_failed_values()).returning(R.id, *CLOSED_ROW))


@lru_cache(maxsize=2)
def mark_delivery(column: str) -> Any:
    """`delivering_at` or `delivered_at`, set once, by the owner of an open request."""
    return (update(requests_table).where(_owned_open_request())
            .values({column: func.coalesce(R[column], _col(requests_table, column))}))


@lru_cache(maxsize=1)
def renew_leases() -> Any:
    """One statement renews every lease a process holds (expanding IN: one bound list)."""
    return (update(requests_table)
            .where(R.owner == bindparam("p_owner", type_=String), R.status.in_(OPEN_STATUSES),
                   R.id.in_(bindparam("p_ids", expanding=True)))
            .values(lease_until=_col(requests_table, "lease_until")))


@lru_cache(maxsize=1)
def refuse_reserved() -> Any:
    """A reservation the charge refused becomes a refusal row: its reason, no charge."""
    return (update(requests_table).where(R.id == bindparam("p_id", type_=BigInteger))
            .values(status="refused", error_kind=_col(requests_table, "error_kind"), credits_charged=0,
                    owner=None, lease_until=None, finished_at=_col(requests_table, "finished_at")))


@lru_cache(maxsize=1)
def refund() -> Any:
    """Give the credits back, and the budget too when the counters still count the charge's period."""
    credits = bindparam("p_credits", type_=BigInteger)
    back_day = case((U.spent_day_key == bindparam("p_day_key", type_=Integer), U.spent_day - credits),
                    else_=U.spent_day)
    back_month = case((U.spent_month_key == bindparam("p_month_key", type_=Integer), U.spent_month - credits),
                      else_=U.spent_month)
    return (update(users_table).where(U.id == bindparam("p_user_id", type_=BigInteger))
            .values(credits=U.credits + credits, spent_day=back_day, spent_month=back_month))
