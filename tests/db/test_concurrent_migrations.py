"""A front and its workers start together and each migrates the database: on PostgreSQL they must take
turns (an advisory lock in the migration environment), or all but one fail on duplicate catalog keys."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.services import asyncpg_dsn, postgres_admin_url

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4


async def test_processes_migrating_one_new_postgresql_database_at_once_all_succeed() -> None:
    import asyncpg

    admin = postgres_admin_url()
    name = f"migrate_{secrets.token_hex(5)}"
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    conn = await asyncpg.connect(asyncpg_dsn(admin))
    await conn.execute(f'CREATE DATABASE "{name}"')
    try:
        code = f"from db.engine import upgrade_database; upgrade_database({url!r})"
        procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=str(ROOT),
                                                      stdout=asyncio.subprocess.DEVNULL,
                                                      stderr=asyncio.subprocess.PIPE) for _ in range(PROCESSES)]
        results = [await p.communicate() for p in procs]
        failures = [err.decode(errors="replace")[-500:] for (_, err), p in zip(results, procs, strict=True)
                    if p.returncode != 0]
        assert not failures, failures
        migrated = await asyncpg.connect(asyncpg_dsn(url))
        try:
            assert await migrated.fetchval("SELECT version_num FROM alembic_version") is not None
            assert await migrated.fetchval("SELECT count(*) FROM alembic_version") == 1
        finally:
            await migrated.close()
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()
