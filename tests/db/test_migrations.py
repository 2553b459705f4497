"""Migrations on every backend: the stairway (every revision up, down, up again), no drift from the
models, data carried through 0003 and 0004; and the SQLite connection set-up."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

import db.rollup_tables  # noqa: F401  (the rollup tables join the metadata)
from db.engine import alembic_config, downgrade_database, make_engine, upgrade_database
from db.models import Base
from tests.db.conftest import only, sqlite_url

T = TypeVar("T")


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def _on(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            return await work(connection)
    finally:
        await engine.dispose()


def _sync(url: str, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    return asyncio.run(_on(url, work))


def _sqlite_path(url: str) -> Path:
    return Path(str(make_url(url).database))


PG_SCHEMA = """
SELECT 'column', table_name, concat_ws(' ', column_name, data_type, character_maximum_length, is_nullable,
                                       column_default)
FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'alembic_version'
UNION ALL
SELECT 'constraint', conrelid::regclass::text, concat_ws(' ', conname, pg_get_constraintdef(oid), convalidated)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'alembic_version'
UNION ALL
SELECT 'index', tablename, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'alembic_version'
"""


def _schema(url: str) -> frozenset[tuple[str, ...]]:
    """Every table, column, constraint and index. SQLite: each definition as its clauses (a table that
    batch mode recreated lists the same columns and constraints in another order, its name quoted);
    PostgreSQL: as the catalogue describes them."""
    if make_url(url).get_backend_name() == "sqlite":
        with closing(sqlite3.connect(_sqlite_path(url))) as con:
            rows = con.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '%alembic_version%'"
                               ).fetchall()
        return frozenset((name, *sorted({line.strip().rstrip(",").replace('"', "")
                                         for line in (sql or "").splitlines()})) for name, sql in rows)

    async def read(connection: AsyncConnection) -> frozenset[tuple[str, ...]]:
        return frozenset(tuple(str(v) for v in row) for row in (await connection.execute(text(PG_SCHEMA))).all())

    return _sync(url, read)


def _tables(url: str) -> set[str]:
    async def read(connection: AsyncConnection) -> set[str]:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names())) - {"alembic_version"}

    return _sync(url, read)


def test_there_is_more_than_one_revision_to_climb() -> None:
    assert _revisions()[:4] == ["0001", "0002", "0003", "0004"]


def test_stairway_every_revision_upgrades_downgrades_and_upgrades_again(empty_db_url: str) -> None:
    url = empty_db_url
    previous, before = "base", _schema(url)
    for revision in _revisions():
        upgrade_database(url, revision)
        after = _schema(url)
        assert after != before
        downgrade_database(url, previous)
        assert _schema(url) == before
        upgrade_database(url, revision)
        assert _schema(url) == after
        previous, before = revision, after
    downgrade_database(url, "base")
    assert _tables(url) == set()


def test_migrations_match_the_models(db_url: str) -> None:
    async def diff(connection: AsyncConnection) -> list[Any]:
        return await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))

    assert _sync(db_url, diff) == []


def test_upgrade_reads_database_url_from_the_environment(
    empty_db_url: str, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite: a file in folders that do not exist yet
    url = sqlite_url(tmp_path / "nested" / "folder" / "env.db") if backend == "sqlite" else empty_db_url
    monkeypatch.setenv("DATABASE_URL", url)
    upgrade_database()
    assert {"users", "requests", "attempts", "credit_ledger", "provider_rollups"} <= _tables(url)


@only("sqlite")
async def test_sqlite_connections_get_wal_busy_timeout_and_foreign_keys(db_url: str) -> None:
    engine = make_engine(db_url)
    async with engine.connect() as connection:
        pragmas = {
            name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
        }
        indexes = await connection.run_sync(lambda sync: inspect(sync).get_indexes("requests"))
    await engine.dispose()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 5000, "foreign_keys": 1, "synchronous": 1}
    assert {"ix_requests_user_created", "ix_requests_created_cover"} <= {i["name"] for i in indexes}


async def test_0003_refills_the_user_rollups_as_a_rebuild_would(empty_db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from db.engine import make_session_maker
    from db.repo.rollups import rebuild_rollups
    from db.rollup_tables import user_rollups
    from tests.db.support import fail, make_user, reserve, serve

    url = empty_db_url
    await asyncio.to_thread(upgrade_database, url)
    engine = make_engine(url)
    start = datetime(2024, 5, 1, 3, tzinfo=UTC)
    async with make_session_maker(engine)() as s, s.begin():
        for user in (1, 2):
            await make_user(s, user, credits=100)
        for n in range(40):
            rid = (await reserve(s, 1 + n % 2, 1 + n % 3, now=start + timedelta(hours=7 * n))).request_id
            assert rid is not None
            await (serve(s, rid, cost=n) if n % 4 else fail(s, rid))
    await engine.dispose()
    await asyncio.to_thread(downgrade_database, url, "0002")
    upgrade_database(url)  # 0003 refills from the requests; called inside a running loop on purpose
    engine = make_engine(url)
    async with make_session_maker(engine)() as s, s.begin():
        migrated = set((await s.execute(select(user_rollups))).all())
        await rebuild_rollups(s)
        rebuilt = set((await s.execute(select(user_rollups))).all())
    await engine.dispose()
    assert migrated == rebuilt and len(rebuilt) > 40


AT = "'2024-05-01 03:00:00.000000'"  # a literal, so each backend reads it as its own timestamp


async def _fill_0003(connection: AsyncConnection, with_ledger: bool) -> None:
    """Rows as a 0003 database holds them: a served, a pending and a failed request with their attempts,
    and (when asked) the ledger rows of their charges and refund."""
    await connection.execute(text(
        f"INSERT INTO users (id, credits, labels, created_at, last_seen_at) VALUES (1, 7, '{{}}', {AT}, {AT})"))
    await connection.execute(text(
        "INSERT INTO requests (id, user_id, label, category, prompt, status, credits_charged, credits_refunded,"
        f" created_at) VALUES (:id, 1, 'L', 'text', 'p', :status, 1, :refunded, {AT})"),
        [{"id": 1, "status": "served", "refunded": 0}, {"id": 2, "status": "pending", "refunded": 0},
         {"id": 3, "status": "failed", "refunded": 1}])
    await connection.execute(text(
        "INSERT INTO attempts (request_id, provider, model, category, position, latency_ms, started_at)"
        f" VALUES (:rid, 'alpha', 'm', 'text', 0, 10, {AT})"), [{"rid": 1}, {"rid": 3}, {"rid": 3}])
    if with_ledger:
        await connection.execute(text(
            f"INSERT INTO credit_ledger (user_id, delta, reason, request_id, created_at)"
            f" VALUES (1, :delta, :reason, :rid, {AT})"),
            [{"delta": 10, "reason": "free", "rid": None}, {"delta": -1, "reason": "charge", "rid": 1},
             {"delta": -1, "reason": "charge", "rid": 2}, {"delta": -1, "reason": "charge", "rid": 3},
             {"delta": 1, "reason": "refund", "rid": 3}])


async def _broken_references(connection: AsyncConnection) -> list[Any]:
    """Rows pointing at nothing, and (PostgreSQL) foreign keys gone or not validated."""
    if connection.dialect.name == "sqlite":
        return list((await connection.execute(text("PRAGMA foreign_key_check"))).all())
    keys = (await connection.execute(text(
        "SELECT conrelid::regclass::text, conname, convalidated FROM pg_constraint WHERE contype = 'f'"
        " AND connamespace = 'public'::regnamespace ORDER BY 2"))).all()
    expected = ["fk_attempts_request_id_requests", "fk_chat_history_user_id_users",
                "fk_credit_ledger_request_id_requests", "fk_credit_ledger_user_id_users", "fk_requests_user_id_users"]
    return [] if [k[1] for k in keys] == expected and all(k[2] for k in keys) else list(keys)


async def _rows(connection: AsyncConnection) -> tuple[list[tuple[int, str]], list[int], list[int | None], list[Any]]:
    async def column(sql: str) -> list[Any]:
        return [r for (r,) in (await connection.execute(text(sql))).all()]

    return ([tuple(r) for r in (await connection.execute(text("SELECT id, status FROM requests ORDER BY id"))).all()],
            await column("SELECT request_id FROM attempts ORDER BY id"),
            await column("SELECT request_id FROM credit_ledger ORDER BY id"),
            await _broken_references(connection))


@pytest.mark.parametrize("with_ledger", [True, False])
def test_0004_keeps_every_attempt_and_ledger_row_of_the_requests_table_it_rebuilds(
    empty_db_url: str, with_ledger: bool
) -> None:
    # SQLite's batch mode copies `requests`, drops it and renames the copy: with foreign keys on, the drop
    # fails on ledger rows that point at a request, or (without any) takes the attempts with it (CASCADE).
    # PostgreSQL alters the table in place: its foreign keys must all still be there, and validated.
    url = empty_db_url
    upgrade_database(url, "0003")
    _sync(url, lambda connection: _fill_0003(connection, with_ledger))
    attempts, ledger = [1, 3, 3], [None, 1, 2, 3, 3] if with_ledger else []
    upgrade_database(url, "0004")
    assert _sync(url, _rows) == ([(1, "served"), (2, "reserved"), (3, "failed")], attempts, ledger, [])
    downgrade_database(url, "0003")
    assert _sync(url, _rows) == ([(1, "served"), (2, "pending"), (3, "failed")], attempts, ledger, [])


def test_0006_gives_each_user_their_private_conversation_back_and_keeps_only_that_on_the_way_down(
    empty_db_url: str
) -> None:
    url = empty_db_url
    upgrade_database(url, "0005")

    async def fill(connection: AsyncConnection) -> None:
        await connection.execute(text(
            f"INSERT INTO users (id, credits, labels, created_at, last_seen_at) VALUES (:id, 0, '{{}}', {AT}, {AT})"),
            [{"id": 1}, {"id": 2}])
        await connection.execute(text(
            f"INSERT INTO chat_history (user_id, role, content, created_at) VALUES (:user, :role, :content, {AT})"),
            [{"user": 1, "role": "user", "content": "q1"}, {"user": 2, "role": "user", "content": "q2"},
             {"user": 1, "role": "assistant", "content": "a1"}])

    async def turns(connection: AsyncConnection) -> list[tuple[Any, ...]]:
        columns = "user_id, chat_id, thread_id, content" if "chat_id" in await _columns(connection) \
            else "user_id, content"
        return [tuple(r) for r in (await connection.execute(text(f"SELECT {columns} FROM chat_history ORDER BY id")))]

    async def group_turn(connection: AsyncConnection) -> None:
        await connection.execute(text(
            "INSERT INTO chat_history (user_id, chat_id, thread_id, role, content, created_at)"
            f" VALUES (2, -100, 5, 'user', 'in a topic', {AT})"))

    _sync(url, fill)
    upgrade_database(url, "0006")
    assert _sync(url, turns) == [(1, 1, 0, "q1"), (2, 2, 0, "q2"), (1, 1, 0, "a1")]
    _sync(url, group_turn)
    downgrade_database(url, "0005")
    assert _sync(url, turns) == [(1, "q1"), (2, "q2"), (1, "a1")]


async def _columns(connection: AsyncConnection) -> set[str]:
    return {c["name"] for c in await connection.run_sync(lambda sync: inspect(sync).get_columns("chat_history"))}
