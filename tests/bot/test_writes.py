"""The write queue: batched on SQLite, every caller gets its own result, one failure spares the rest,
and a write survives its caller being cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.services.writes import WriteQueue
from db.engine import make_engine, make_session_maker, upgrade_database
from db.repo.users import get_user, upsert_user


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = make_engine(url)
    yield make_session_maker(engine)
    await engine.dispose()


class Counting(WriteQueue):
    transactions = 0

    async def _together(self, batch):  # type: ignore[no-untyped-def]
        Counting.transactions += 1
        return await super()._together(batch)


async def test_a_burst_shares_few_transactions_and_each_caller_gets_its_result(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    queue = Counting(sessions, batched=True)
    Counting.transactions = 0
    views = await asyncio.gather(*(queue.run(lambda s, i=i: upsert_user(s, i, first_name=f"u{i}", free_credits=3))
                                   for i in range(1, 101)))
    assert [v.tg_id for v in views] == list(range(1, 101)) and all(v.credits == 3 for v in views)
    assert Counting.transactions <= 5
    async with sessions() as session:
        assert (await get_user(session, 77)) is not None


async def test_one_failing_write_spares_the_others(sessions: async_sessionmaker[AsyncSession]) -> None:
    queue = WriteQueue(sessions, batched=True)

    async def broken(session: AsyncSession) -> None:
        await session.execute(text("INSERT INTO no_such_table VALUES (1)"))

    results = await asyncio.gather(
        queue.run(lambda s: upsert_user(s, 1, free_credits=1)), queue.run(broken),
        queue.run(lambda s: upsert_user(s, 2, free_credits=1)), return_exceptions=True)
    assert isinstance(results[1], Exception)
    assert [getattr(r, "tg_id", None) for r in (results[0], results[2])] == [1, 2]


async def test_a_cancelled_caller_does_not_cancel_its_write(sessions: async_sessionmaker[AsyncSession]) -> None:
    queue = WriteQueue(sessions, batched=True)
    caller = asyncio.create_task(queue.run(lambda s: upsert_user(s, 5, free_credits=2)))
    await asyncio.sleep(0)
    caller.cancel()
    await queue.aclose()
    async with sessions() as session:
        assert (await get_user(session, 5)) is not None


async def test_unbatched_mode_runs_each_write_alone(sessions: async_sessionmaker[AsyncSession]) -> None:
    queue = WriteQueue(sessions, batched=False)
    view = await queue.run(lambda s: upsert_user(s, 9, free_credits=4))
    assert view.credits == 4
