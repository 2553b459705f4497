"""Shared by the admin-side tests: the app built as `python -m bot` builds it (CoreHarness), with two
admins and a timezone, and a request log with known figures written through the db repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repo.lifecycle import close_failed, close_served, record_attempts, reserve_request
from db.repo.records import AttemptRecord, ServedRecord
from db.repo.users import upsert_user
from tests.bot.core_harness import CoreHarness

Sessions = async_sessionmaker[AsyncSession]
ADMIN = 1001
ADMIN_RU = 1002
USER = 2001
TZ = "Europe/Berlin"
OWNER = "admin-tests"  # the process that writes the logged requests
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # a lease that never runs out
# Throttling is not under test here: some tests send dozens of commands in a row
ADMIN_SETTINGS: dict[str, Any] = {"admin_ids": f"{ADMIN},{ADMIN_RU}", "timezone": TZ, "throttle_rate": 1000}


def admin_harness(tmp: Path, **overrides: Any) -> AbstractAsyncContextManager[CoreHarness]:
    """The real app with ADMIN and ADMIN_RU as its admins, in TZ, unless `overrides` say otherwise."""
    return CoreHarness.start(tmp, **{**ADMIN_SETTINGS, **overrides})


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with admin_harness(tmp_path) as harness:
        yield harness


@dataclass(frozen=True)
class Logged:
    """One finished request: the attempts in order as (provider, kind or None, latency ms, cost micros)."""

    user: int
    category: str
    attempts: Sequence[tuple[str, str | None, int, int]]
    credits: int = 1
    served: bool = True


async def add_user(sessions: Sessions, tg_id: int, *, username: str | None = None, first_name: str = "Tester",
                   language: str = "en", credits: int = 10) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, tg_id, username=username, first_name=first_name, language=language,
                          is_admin=tg_id in (ADMIN, ADMIN_RU), free_credits=credits)


async def log_requests(sessions: Sessions, start: datetime, requests: Sequence[Logged]) -> None:
    """Write each request as the bot does: reserve, record every attempt, close served or failed."""
    async with sessions() as s, s.begin():
        for n, item in enumerate(requests):
            at = start + timedelta(minutes=n)
            first = item.attempts[0][0]
            res = await reserve_request(s, owner=OWNER, lease_until=FAR, tg_id=item.user, update_id=None,
                                        label="Label", category=item.category, prompt=f"prompt {n}",
                                        credits=item.credits, chat_id=item.user, route_first_provider=first, now=at)
            assert res.ok and res.request_id is not None, res
            await record_attempts(s, res.request_id, [AttemptRecord(
                provider, "model-x", item.category, order, kind, 200 if kind is None else 503, latency, cost,
                started_at=at) for order, (provider, kind, latency, cost) in enumerate(item.attempts)])
            provider, _, latency, cost = item.attempts[-1]
            if item.served:
                await close_served(s, res.request_id, OWNER, ServedRecord(provider, "model-x", cost, latency,
                                                                          finished_at=at))
            else:
                await close_failed(s, res.request_id, OWNER, error_kind="unavailable", now=at)
