"""The attempt log of a request: one row per provider attempt, and the provider rollups it feeds.

Two statements however many attempts; called by `db.repo.lifecycle`, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import MESSAGE_MAX
from db.repo import rollups, statements
from db.repo.records import AttemptRecord


async def record_attempts(session: AsyncSession, request_id: int, attempts: Sequence[AttemptRecord]) -> None:
    """Attempt rows and their rollups: two statements however many attempts."""
    await record_on(await session.connection(), request_id, attempts)


async def record_on(
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
