"""Migrations: the stairway (every revision up, down, up again), no drift from the models, SQLite set-up."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import db.rollup_tables  # noqa: F401  (the rollup tables join the metadata)
from db.engine import alembic_config, downgrade_database, make_engine, upgrade_database
from db.models import Base
from tests.db.conftest import sqlite_url


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _schema(path: Path) -> set[tuple[str, frozenset[str]]]:
    """Every table and index as its definition's clauses: a table that batch mode recreated lists the same
    columns and constraints, in another order, with its name quoted."""
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '%alembic_version%'").fetchall()
    return {(name, frozenset(line.strip().rstrip(",").replace('"', "") for line in (sql or "").splitlines()))
            for name, sql in rows}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows} - {"alembic_version"}


def test_there_is_more_than_one_revision_to_climb() -> None:
    assert _revisions()[:4] == ["0001", "0002", "0003", "0004"]


def test_stairway_every_revision_upgrades_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    path = tmp_path / "stairs.db"
    url = sqlite_url(path)
    previous, before = "base", _schema(path)
    for revision in _revisions():
        upgrade_database(url, revision)
        after = _schema(path)
        assert after != before
        downgrade_database(url, previous)
        assert _schema(path) == before
        upgrade_database(url, revision)
        assert _schema(path) == after
        previous, before = revision, after
    downgrade_database(url, "base")
    assert _tables(path) == set()


def test_migrations_match_the_models(db_url: str) -> None:
    engine = create_engine(db_url.replace("+aiosqlite", ""))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_reads_database_url_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nested" / "folder" / "env.db"
    monkeypatch.setenv("DATABASE_URL", sqlite_url(path))
    upgrade_database()
    assert path.exists()
    assert {"users", "requests", "attempts", "credit_ledger", "provider_rollups"} <= _tables(path)


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


async def test_0003_refills_the_user_rollups_as_a_rebuild_would(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from db.engine import make_session_maker
    from db.repo.rollups import rebuild_rollups
    from db.rollup_tables import user_rollups
    from tests.db.support import fail, make_user, reserve, serve

    url = sqlite_url(tmp_path / "refill.db")
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


def _fill_0003(path: Path, with_ledger: bool) -> None:
    """Rows as a 0003 database holds them: a served, a pending and a failed request with their attempts,
    and (when asked) the ledger rows of their charges and refund."""
    at = "2024-05-01 03:00:00.000000"
    with closing(sqlite3.connect(path)) as con, con:
        con.execute("INSERT INTO users (id, credits, labels, created_at, last_seen_at) VALUES (1, 7, '{}', ?, ?)",
                    (at, at))
        con.executemany(
            "INSERT INTO requests (id, user_id, label, category, prompt, status, credits_charged, credits_refunded,"
            " created_at) VALUES (?, 1, 'L', 'text', 'p', ?, 1, ?, ?)",
            [(1, "served", 0, at), (2, "pending", 0, at), (3, "failed", 1, at)])
        con.executemany(
            "INSERT INTO attempts (request_id, provider, model, category, position, latency_ms, started_at)"
            " VALUES (?, 'alpha', 'm', 'text', 0, 10, ?)", [(1, at), (3, at), (3, at)])
        if with_ledger:
            con.executemany(
                "INSERT INTO credit_ledger (user_id, delta, reason, request_id, created_at) VALUES (1, ?, ?, ?, ?)",
                [(10, "free", None, at), (-1, "charge", 1, at), (-1, "charge", 2, at), (-1, "charge", 3, at),
                 (1, "refund", 3, at)])


def _rows(path: Path) -> tuple[list[tuple[int, str]], list[int], list[int | None], list[object]]:
    with closing(sqlite3.connect(path)) as con:
        return (con.execute("SELECT id, status FROM requests ORDER BY id").fetchall(),
                [r for (r,) in con.execute("SELECT request_id FROM attempts ORDER BY id")],
                [r for (r,) in con.execute("SELECT request_id FROM credit_ledger ORDER BY id")],
                con.execute("PRAGMA foreign_key_check").fetchall())


@pytest.mark.parametrize("with_ledger", [True, False])
def test_0004_keeps_every_attempt_and_ledger_row_of_the_requests_table_it_rebuilds(
    tmp_path: Path, with_ledger: bool
) -> None:
    # SQLite's batch mode copies `requests`, drops it and renames the copy: with foreign keys on, the drop
    # fails on ledger rows that point at a request, or (without any) takes the attempts with it (CASCADE).
    path = tmp_path / "rebuilt.db"
    upgrade_database(sqlite_url(path), "0003")
    _fill_0003(path, with_ledger)
    attempts, ledger = [1, 3, 3], [None, 1, 2, 3, 3] if with_ledger else []
    upgrade_database(sqlite_url(path), "0004")
    assert _rows(path) == ([(1, "served"), (2, "reserved"), (3, "failed")], attempts, ledger, [])
    downgrade_database(sqlite_url(path), "0003")
    assert _rows(path) == ([(1, "served"), (2, "pending"), (3, "failed")], attempts, ledger, [])
