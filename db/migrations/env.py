"""Alembic environment, async-aware: an async URL (aiosqlite, asyncpg) is migrated through an async engine.

The URL, first found wins: `config.attributes["url"]` (set by db.engine.upgrade_database), DATABASE_URL,
then `sqlalchemy.url` of alembic.ini. A caller may also hand over an open connection in
`config.attributes["connection"]`.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, event, pool
from sqlalchemy.engine import make_url

import db.rollup_tables  # noqa: F401  (registers the rollup tables on the metadata)
from db.engine import DEFAULT_DATABASE_URL, apply_sqlite_pragmas, ensure_sqlite_dir, make_engine
from db.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
MIGRATION_LOCK = 0x61695F626F74  # any constant that other applications on the same server do not use


def _url() -> str:
    return str(
        config.attributes.get("url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_DATABASE_URL
    )


def _configure(**kwargs: Any) -> None:
    # Batch mode: SQLite cannot ALTER most things, Alembic recreates the table instead
    context.configure(target_metadata=target_metadata, render_as_batch=True, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    # Batch mode drops and recreates a table; with foreign keys on, SQLite refuses to drop a table that
    # other rows point at. Off for the migration (it can only change outside a transaction), then checked.
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    _configure(connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # processes starting together (a front and its workers) migrate one after the other: the
            # others wait here, then find the database at head (concurrent DDL fails on catalog keys)
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
    if sqlite:
        connection.commit()
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
        if broken:
            raise RuntimeError(f"the migration left rows pointing at nothing: {broken[:5]}")


async def _run_async(url: str) -> None:
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _run_sync(url: str) -> None:
    ensure_sqlite_dir(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", apply_sqlite_pragmas)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = _url()
    if not make_url(url).get_dialect().is_async:
        _run_sync(url)
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_run_async(url))
        return
    # Called straight from async code (not via asyncio.to_thread): a private loop in a helper thread;
    # the caller's loop waits, as it would for any synchronous call
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _run_async(url)).result()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
