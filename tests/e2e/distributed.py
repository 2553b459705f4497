"""The distributed mode as subprocesses: PostgreSQL + Redis + one front (`python -m bot`) + workers
(`python -m bot.worker`), all against the loopback fakes. Each test gets a database of its own on the
real PostgreSQL and a Redis database emptied for it; tests skip (or fail under REQUIRE_SERVICES=1) where
either service is absent.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tests.e2e.harness import ROOT, BotProcess, bot_env, start_fakes, write_providers_file
from tests.fakes.telegram import FakeTelegram
from tests.services import asyncpg_dsn, postgres_admin_url, redis_url
from tests.support.botenv import Fakes

WORKER_READY = "takes requests"


@contextlib.asynccontextmanager
async def services(tmp: Path, redis_db: int, **env: str) -> AsyncIterator[tuple[Fakes, PgDatabase, dict[str, str]]]:
    """The loopback fakes, a new PostgreSQL database and an emptied Redis database (`redis_db`), and the
    environment of a bot on them; the tests skip (or fail under REQUIRE_SERVICES=1) without the services.
    Everything is stopped and dropped at the end."""
    redis = make_url(redis_url()).set(database=str(redis_db)).render_as_string(hide_password=False)
    admin_url = postgres_admin_url()
    await flush_redis(redis)
    db = await PgDatabase(admin_url).create()
    fakes = await start_fakes()
    try:
        yield fakes, db, bot_env(tmp, fakes, write_providers_file(tmp / "providers.toml", fakes),
                                 DATABASE_URL=db.url, REDIS_URL=redis, **env)
    finally:
        await fakes.stop()
        await db.drop()


class PgDatabase:
    """A fresh PostgreSQL database for one test, read with plain SQL (asyncpg), dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"e2e_{secrets.token_hex(6)}"
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    async def create(self) -> PgDatabase:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        return self

    async def drop(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(self.admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def rows(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await conn.close()

    async def credits(self, user_id: int) -> int | None:
        rows = await self.rows("SELECT credits FROM users WHERE id = $1", user_id)
        return int(rows[0]["credits"]) if rows else None

    async def requests(self, user_id: int) -> list[dict[str, Any]]:
        return await self.rows("SELECT * FROM requests WHERE user_id = $1 ORDER BY id", user_id)

    async def ledger(self, user_id: int) -> list[dict[str, Any]]:
        return await self.rows("SELECT delta, reason, request_id FROM credit_ledger WHERE user_id = $1 ORDER BY id",
                               user_id)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def flush_redis(url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


class LoggedProcess(BotProcess):
    """`python -m <module>`; `start()` returns once its log says `ready` (a worker taking requests, a
    front in webhook mode serving), since neither polls getUpdates."""

    def __init__(self, env: dict[str, str], log_path: Path, telegram: FakeTelegram, module: str, ready: str) -> None:
        super().__init__(env, log_path, telegram)
        self.module, self.ready = module, ready

    async def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"\n===== python -m {self.module} =====\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, cwd=str(ROOT), env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT)

    async def start(self, within_s: float = 60.0) -> LoggedProcess:
        before = self.log().count(self.ready)
        await self.spawn()
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while self.log().count(self.ready) <= before:
            if self.proc.returncode is not None:
                raise AssertionError(f"python -m {self.module} exited with {self.proc.returncode}:\n{self.log()}")
            if loop.time() > deadline:
                raise AssertionError(f"python -m {self.module} not ready within {within_s}s:\n{self.log()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.proc.wait()), 0.1)
        return self


class WorkerProcess(LoggedProcess):
    def __init__(self, env: dict[str, str], log_path: Path, telegram: FakeTelegram) -> None:
        super().__init__(env, log_path, telegram, "bot.worker", WORKER_READY)


class WebhookFront(LoggedProcess):
    def __init__(self, env: dict[str, str], log_path: Path, telegram: FakeTelegram) -> None:
        super().__init__(env, log_path, telegram, "bot", "webhook server on")
