"""Chat history: newest turns kept within the size budget, old turns pruned, /new clears."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repo.history import append_exchange, append_message, clear_history, load_history
from db.repo.users import upsert_user
from tests.db.conftest import FreshDb

Sessions = async_sessionmaker[AsyncSession]


async def test_newest_turns_are_kept_and_oldest_trimmed(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        await upsert_user(s, 2)
        for role, text in [("user", "aaaa"), ("assistant", "bbbb"), ("user", "cc"), ("assistant", "dd")]:
            await append_message(s, 1, role, text)
        await append_message(s, 2, "user", "other user")
        assert await load_history(s, 1, 100) == [("user", "aaaa"), ("assistant", "bbbb"), ("user", "cc"),
                                                 ("assistant", "dd")]
        assert await load_history(s, 1, 8) == [("assistant", "bbbb"), ("user", "cc"), ("assistant", "dd")]
        assert await load_history(s, 1, 7) == [("user", "cc"), ("assistant", "dd")]
        assert await load_history(s, 1, 1) == [("assistant", "d")]  # the newest turn, cut to fit
        assert await clear_history(s, 1) == 4
        assert await load_history(s, 1, 100) == []
        assert await load_history(s, 2, 100) == [("user", "other user")]


async def test_only_the_newest_turns_are_stored(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        for i in range(12):
            await append_message(s, 1, "user", str(i), keep=5)
        assert [c for _, c in await load_history(s, 1, 1000)] == ["7", "8", "9", "10", "11"]


async def test_exchanges_are_pruned_on_the_read_that_prunes(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await upsert_user(s, 1)
        for i in range(6):
            await append_exchange(s, 1, f"q{i}", f"a{i}")
        newest = ["q3", "a3", "q4", "a4", "q5", "a5"]
        assert [c for _, c in await load_history(s, 1, 1000, keep=6)] == newest
        assert len(await load_history(s, 1, 1000)) == 12  # a plain read deletes nothing
        assert [r for r, _ in await load_history(s, 1, 1000, keep=6, prune=True)] == ["user", "assistant"] * 3
        assert [c for _, c in await load_history(s, 1, 1000)] == newest


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
                await append_message(s, 1, "user", text)
            loaded = await load_history(s, 1, max_chars)
        await engine.dispose()
        return loaded

    loaded = [c for _, c in asyncio.run(scenario())]
    if fresh_db.backend == "postgres":  # PostgreSQL text cannot hold U+0000: db/models.py stores U+FFFD
        turns = [text.replace("\x00", "\ufffd") for text in turns]
    expected = _expected(turns, max_chars) or [turns[-1][-max_chars:]]
    assert loaded == expected
    assert sum(map(len, loaded)) <= max_chars
