"""Migrations: the stairway (every revision up, down, up again), no drift from the models, SQLite set-up."""

from __future__ import annotations

import asyncio
import sqlite3
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


def _schema(path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_master WHERE name NOT LIKE '%alembic_version%'").fetchall()
    return {(name, sql or "") for name, sql in rows}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows} - {"alembic_version"}


def test_there_is_more_than_one_revision_to_climb() -> None:
    assert _revisions()[:3] == ["0001", "0002", "0003"]


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
