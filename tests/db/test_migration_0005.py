"""Migration 0005 (payments) on every backend: the ledger table it rebuilds keeps its rows, and going back
down keeps every balance equal to its ledger (purchases and their refunds stay, as admin grants)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from db.engine import downgrade_database, make_engine, upgrade_database

AT = "'2024-05-01 03:00:00.000000'"  # a literal, so each backend reads it as its own timestamp


async def _run(url: str, sql: str, params: list[dict[str, Any]] | dict[str, Any] | None = None) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(sql), params)
            return [tuple(r) for r in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


def _sync(url: str, sql: str, params: list[dict[str, Any]] | dict[str, Any] | None = None) -> list[Any]:
    return asyncio.run(_run(url, sql, params))


def test_0005_keeps_the_ledger_and_its_way_down_keeps_balances_equal_to_it(empty_db_url: str) -> None:
    url = empty_db_url
    upgrade_database(url, "0004")
    _sync(url, f"INSERT INTO users (id, credits, labels, created_at, last_seen_at) VALUES (1, 15, '{{}}', {AT}, {AT})")
    _sync(url, f"INSERT INTO credit_ledger (user_id, delta, reason, created_at) VALUES (1, :d, :r, {AT})",
          [{"d": 10, "r": "free"}, {"d": 5, "r": "admin_grant"}])
    upgrade_database(url, "0005")
    assert _sync(url, "SELECT delta, reason, payment_id FROM credit_ledger ORDER BY id") == [
        (10, "free", None), (5, "admin_grant", None)]

    _sync(url, "INSERT INTO payments (id, charge_id, user_id, credits, stars, payload, status, credits_debited,"
               f" created_at, refunded_at) VALUES (1, 'stx1', 1, 100, 50, 'p', 'refunded', 30, {AT}, {AT})")
    _sync(url, "INSERT INTO credit_ledger (user_id, delta, reason, payment_id, created_at)"
               f" VALUES (1, :d, :r, 1, {AT})",
          [{"d": 100, "r": "purchase"}, {"d": -30, "r": "purchase_refund"}])
    _sync(url, "UPDATE users SET credits = 85 WHERE id = 1")
    downgrade_database(url, "0004")
    assert _sync(url, "SELECT delta, reason FROM credit_ledger ORDER BY id") == [
        (10, "free"), (5, "admin_grant"), (100, "admin_grant"), (-30, "admin_grant")]
    assert _sync(url, "SELECT credits FROM users") == [(85,)]
    upgrade_database(url, "0005")
    assert _sync(url, "SELECT count(*) FROM payments") == [(0,)]
