"""Chat history: newest turns kept within the size budget, old turns pruned, /new clears; one history per
conversation (a private chat, a group, a forum topic), whoever in it spoke."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repo.history import Conversation, append_exchange, append_message, clear_history, load_history
from db.repo.users import upsert_user
from tests.db.conftest import FreshDb

Sessions = async_sessionmaker[AsyncSession]
ONE, TWO = Conversation.private(1), Conversation.private(2)


async def test_newest_turns_are_kept_and_oldest_trimmed(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        await upsert_user(s, 2)
        for role, text in [("user", "aaaa"), ("assistant", "bbbb"), ("user", "cc"), ("assistant", "dd")]:
            await append_message(s, ONE, 1, role, text)
        await append_message(s, TWO, 2, "user", "other user")
        assert await load_history(s, ONE, 100) == [("user", "aaaa"), ("assistant", "bbbb"), ("user", "cc"),
                                                 ("assistant", "dd")]
        assert await load_history(s, ONE, 8) == [("assistant", "bbbb"), ("user", "cc"), ("assistant", "dd")]
        assert await load_history(s, ONE, 7) == [("user", "cc"), ("assistant", "dd")]
        assert await load_history(s, ONE, 1) == [("assistant", "d")]  # the newest turn, cut to fit
        assert await clear_history(s, ONE) == 4
        assert await load_history(s, ONE, 100) == []
        assert await load_history(s, TWO, 100) == [("user", "other user")]


async def test_only_the_newest_turns_are_stored(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        for i in range(12):
            await append_message(s, ONE, 1, "user", str(i), keep=5)
        assert [c for _, c in await load_history(s, ONE, 1000)] == ["7", "8", "9", "10", "11"]


async def test_exchanges_are_pruned_on_the_read_that_prunes(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        for i in range(6):
            await append_exchange(s, ONE, 1, f"q{i}", f"a{i}")
        newest = ["q3", "a3", "q4", "a4", "q5", "a5"]
        assert [c for _, c in await load_history(s, ONE, 1000, keep=6)] == newest
        assert len(await load_history(s, ONE, 1000)) == 12  # a plain read deletes nothing
        assert [r for r, _ in await load_history(s, ONE, 1000, keep=6, prune=True)] == ["user", "assistant"] * 3
        assert [c for _, c in await load_history(s, ONE, 1000)] == newest


async def test_a_group_and_each_of_its_topics_are_conversations_of_their_own(sessions: Sessions) -> None:
    group, topic = Conversation(-100123), Conversation(-100123, 7)
    async with sessions() as s, s.begin():
        for user in (1, 2):
            await upsert_user(s, user)
        await append_exchange(s, group, 1, "q from 1", "a to 1")
        await append_exchange(s, group, 2, "q from 2", "a to 2")  # another member: the same conversation
        await append_exchange(s, topic, 1, "in the topic", "topic answer")
        await append_exchange(s, ONE, 1, "in private", "private answer")
        assert [c for _, c in await load_history(s, group, 1000)] == ["q from 1", "a to 1", "q from 2", "a to 2"]
        assert [c for _, c in await load_history(s, topic, 1000)] == ["in the topic", "topic answer"]
        assert [c for _, c in await load_history(s, ONE, 1000)] == ["in private", "private answer"]
        assert await clear_history(s, group) == 4
        assert await load_history(s, group, 1000) == []
        assert len(await load_history(s, topic, 1000)) == 2 and len(await load_history(s, ONE, 1000)) == 2


def _expected(turns: list[str], max_chars: int) -> list[str]:
    kept: list[str] = []
    for text in reversed(turns):
        if sum(map(len, kept)) + len(text) > max_chars:
            break
        kept.insert(0, text)
    return kept


@settings(max_examples=25, deadline=None)
@given(turns=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=12), max_chars=st.integers(1, 120))
def test_history_is_the_longest_newest_suffix_that_fits(fresh_db: FreshDb, turns: list[str], max_chars: int) -> None:
    import asyncio

    from db.engine import make_engine, make_session_maker

    async def scenario() -> list[tuple[str, str]]:
        engine = make_engine(fresh_db.new())
        async with make_session_maker(engine)() as s, s.begin():
            await upsert_user(s, 1)
            for text in turns:
                await append_message(s, ONE, 1, "user", text)
            loaded = await load_history(s, ONE, max_chars)
        await engine.dispose()
        return loaded

    loaded = [c for _, c in asyncio.run(scenario())]
    if fresh_db.backend == "postgres":  # PostgreSQL text cannot hold U+0000: db/models.py stores U+FFFD
        turns = [text.replace("\x00", "\ufffd") for text in turns]
    expected = _expected(turns, max_chars) or [turns[-1][-max_chars:]]
    assert loaded == expected
    assert sum(map(len, loaded)) <= max_chars
