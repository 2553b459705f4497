"""Users: upsert on every update, free credits granted once, labels, language, grants, the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import LedgerEntry
from db.repo.users import (
    get_user,
    grant_credits,
    ledger_mismatches,
    set_label,
    set_language,
    upsert_user,
)
from tests.db.support import T0, ledger_sum

Sessions = async_sessionmaker[AsyncSession]


async def test_a_new_user_gets_free_credits_once_as_a_ledger_row(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        first = await upsert_user(s, 42, username="ann", first_name="Ann", language="en", free_credits=10, now=T0)
    async with sessions() as s, s.begin():
        again = await upsert_user(s, 42, username="ann2", first_name="Anna", language="ru", is_admin=True,
                                  free_credits=10, now=T0 + timedelta(hours=1))
    async with sessions() as s:
        rows = (await s.scalars(select(LedgerEntry).where(LedgerEntry.user_id == 42))).all()
    assert first.is_new and not again.is_new
    assert (first.credits, again.credits) == (10, 10)
    assert [(r.delta, r.reason) for r in rows] == [(10, "free")]
    assert (again.username, again.first_name, again.language, again.is_admin) == ("ann2", "Anna", "ru", True)
    assert again.created_at == T0 and again.last_seen_at == T0 + timedelta(hours=1)


async def test_zero_free_credits_writes_no_ledger_row(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        user = await upsert_user(s, 7, free_credits=0)
        assert user.credits == 0
        assert (await s.scalars(select(LedgerEntry))).all() == []


async def test_labels_are_kept_per_category(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        assert await set_label(s, 1, "Fast chat")
        assert await set_label(s, 1, "Pictures", category="image")
        assert await set_label(s, 1, "Smart chat", category="text")
        assert not await set_label(s, 999, "Fast chat")
    async with sessions() as s:
        user = await get_user(s, 1)
    assert user is not None
    assert dict(user.labels) == {"text": "Smart chat", "image": "Pictures"}
    assert user.label_for("image") == "Pictures" and user.label_for("video") is None


async def test_a_chosen_language_wins_over_telegrams(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1, language="en")
        await set_language(s, 1, "ru")
        user = await upsert_user(s, 1, language="de")
    assert user.language == "ru"


async def test_grants_and_take_backs_are_ledger_rows_and_never_overdraw(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1, free_credits=3)
        assert await grant_credits(s, 1, 5, by=99) == 8
        assert await grant_credits(s, 1, -8, by=99) == 0
        assert await grant_credits(s, 1, -1, by=99) is None
        assert await grant_credits(s, 2, 5) is None
        with pytest.raises(ValueError):
            await grant_credits(s, 1, 5, reason="refund")
        rows = (await s.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all()
        assert [(r.delta, r.reason, r.by_admin) for r in rows] == [
            (3, "free", None), (5, "admin_grant", 99), (-8, "admin_grant", 99)]
        assert await ledger_sum(s, 1) == 0
        assert await ledger_mismatches(s) == []


async def test_ledger_mismatches_finds_a_balance_changed_behind_the_ledgers_back(sessions: Sessions) -> None:
    from sqlalchemy import update

    from db.models import User

    async with sessions() as s, s.begin():
        await upsert_user(s, 1, free_credits=3)
        await s.execute(update(User).where(User.id == 1).values(credits=4))
        assert await ledger_mismatches(s) == [(1, 4, 3)]


async def test_text_from_outside_with_a_nul_character_is_stored(sessions: Sessions, backend: str) -> None:
    # PostgreSQL refuses U+0000 in text columns (SQLite keeps it): names, prompts, provider messages and
    # chat turns keep their length there with U+FFFD in its place, instead of failing the whole write
    from db.models import Request
    from db.repo.history import Conversation, append_message, load_history
    from db.repo.lifecycle import close_failed, reserve_request
    from tests.db.support import FAR, OWNER

    async with sessions() as s, s.begin():
        await upsert_user(s, 5, username="a\x00b", first_name="\x00", free_credits=3)
        await append_message(s, Conversation.private(5), 5, "assistant", "answer\x00")
        rid = (await reserve_request(s, owner=OWNER, lease_until=FAR, tg_id=5, update_id=None, label="L",
                                     category="text", prompt="draw\x00", credits=1)).request_id
        assert rid is not None
        assert await close_failed(s, rid, OWNER, error_kind="unavailable", message="boom\x00") is not None
    nul = "\ufffd" if backend == "postgres" else "\x00"
    async with sessions() as s:
        user = await get_user(s, 5)
        assert user is not None and (user.username, user.first_name) == (f"a{nul}b", nul)
        assert await load_history(s, Conversation.private(5), 100) == [("assistant", f"answer{nul}")]
        assert (await s.execute(select(Request.prompt, Request.error_message))).one() == (f"draw{nul}", f"boom{nul}")
