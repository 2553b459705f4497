"""Databases for db/ tests: temporary SQLite files migrated by Alembic (never create_all)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import make_engine, make_session_maker, upgrade_database


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path / "data" / "bot.db")
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated file that property tests copy per example (migrating each example would be slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_database(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def fresh_db(migrated_template: Path, tmp_path_factory: pytest.TempPathFactory) -> FreshDb:
    """Session-scoped, so hypothesis may use it: every example asks for its own copy."""
    return FreshDb(migrated_template, tmp_path_factory.mktemp("copies"))


class FreshDb:
    """Hands out copies of the migrated template: `url = fresh_db.new()`."""

    def __init__(self, template: Path, folder: Path) -> None:
        self.template, self.folder, self.count = template, folder, 0

    def new(self) -> str:
        self.count += 1
        path = self.folder / f"copy{self.count}.db"
        shutil.copyfile(self.template, path)
        return sqlite_url(path)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_maker(engine)
