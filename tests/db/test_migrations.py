"""Migrations: the stairway (every revision up, down, up again), no drift from the models, SQLite set-up."""

from __future__ import annotations

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


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows} - {"alembic_version"}


def test_there_is_more_than_one_revision_to_climb() -> None:
    assert _revisions()[:2] == ["0001", "0002"]


def test_stairway_every_revision_upgrades_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    path = tmp_path / "stairs.db"
    url = sqlite_url(path)
    previous = "base"
    for revision in _revisions():
        upgrade_database(url, revision)
        tables = _tables(path)
        downgrade_database(url, previous)
        assert _tables(path) < tables  # this revision's tables are gone again
        upgrade_database(url, revision)
        assert _tables(path) == tables
        previous = revision
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
