"""Positions in outside lists and the payments' statuses by charge id, on every backend: a position starts
at 0, moves forward only (two overlapping readers never take it back), and each list has its own."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repo.payments import payment_statuses, record_purchase, record_refund
from db.repo.positions import advance_position, read_position
from tests.db.support import T0, make_user

Sessions = async_sessionmaker[AsyncSession]


async def _advance(sessions: Sessions, name: str, position: int) -> int:
    async with sessions() as s, s.begin():
        return await advance_position(s, name, position, now=T0)


async def _read(sessions: Sessions, name: str) -> int:
    async with sessions() as s:
        return await read_position(s, name)


async def test_a_list_never_read_is_at_position_zero(sessions: Sessions) -> None:
    assert await _read(sessions, "stars") == 0


async def test_a_position_moves_forward_and_a_smaller_one_never_takes_it_back(sessions: Sessions) -> None:
    assert await _advance(sessions, "stars", 100) == 100
    assert await _advance(sessions, "stars", 130) == 130
    assert await _advance(sessions, "stars", 100) == 130  # a reader that started earlier finishes later
    assert await _advance(sessions, "stars", 130) == 130
    assert await _read(sessions, "stars") == 130
    assert await _read(sessions, "another list") == 0


async def test_readers_storing_at_once_leave_the_largest_position(sessions: Sessions) -> None:
    await asyncio.gather(*[_advance(sessions, "stars", n) for n in (5, 40, 12, 40, 3, 27)])
    assert await _read(sessions, "stars") == 40


async def test_payment_statuses_name_the_known_charges_only(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await make_user(s, 1)
        for charge in ("a", "b"):
            await record_purchase(s, charge_id=charge, user_id=1, credits=10, stars=5, now=T0)
        await record_refund(s, "b", now=T0)
    async with sessions() as s:
        assert await payment_statuses(s, ["a", "b", "c"]) == {"a": "paid", "b": "refunded"}
        assert await payment_statuses(s, []) == {}
