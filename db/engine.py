"""The async engine and session maker from DATABASE_URL, and `upgrade_database` (Alembic to head).

SQLite gets, on every connection: WAL (readers never wait for the writer), a 5 s busy timeout (writers
queue instead of failing), foreign keys on, and synchronous=NORMAL (safe with WAL, no fsync per commit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from loguru import logger
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/bot.db"
SQLITE_PRAGMAS = ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def safe_url(url: str) -> str:
    """For logs: the URL with its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def ensure_sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite file (./data by default) so the first start just works."""
    parsed = make_url(url)
    path = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:" and not path.startswith("file:"):
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def apply_sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
    finally:
        cursor.close()


def make_engine(url: str | None = None, **kwargs: Any) -> AsyncEngine:
    url = database_url(url)
    ensure_sqlite_dir(url)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", apply_sqlite_pragmas)
    logger.debug("database engine for {}", safe_url(url))
    return engine


def make_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: handlers use what they loaded without another round trip
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    """Alembic's config for `url` (else DATABASE_URL, else the default), from alembic.ini when present."""
    config = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = database_url(url)
    config.attributes["configure_logger"] = False  # leave the application's logging alone
    return config


def upgrade_database(url: str | None = None, revision: str = "head") -> None:
    """Run the migrations up to `revision`. Synchronous: from async code use `asyncio.to_thread`."""
    url = database_url(url)
    ensure_sqlite_dir(url)
    logger.info("migrating {} to {}", safe_url(url), revision)
    command.upgrade(alembic_config(url), revision)


def downgrade_database(url: str | None, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
