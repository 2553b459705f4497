"""Databases for db/ tests, on every backend: each test runs once on SQLite and once on PostgreSQL.

The session-scoped `databases` fixture is parametrised by backend (test ids end in `[sqlite]` or
`[postgres]`); everything else asks it for databases, so a test written against `db_url`, `engine`,
`sessions` or `fresh_db` runs on both without knowing which. Schemas always come from the Alembic
migrations (never create_all):

- SQLite: one file migrated per session, copied for every test (and every hypothesis example).
- PostgreSQL (`tests/services.py` `postgres_admin_url()`: skipped when the server does not answer, a
  failure under REQUIRE_SERVICES=1): one database migrated per session, emptied before every test and
  every hypothesis example (`PostgresDatabases.fresh`: rows deleted, sequences restarted); migration
  tests get new databases of their own (`empty_db_url`). Every database a session creates is named
  `pytest_<host>_<pid>_<random>_<n>`, so concurrent runs on one server never meet, and the next run on
  this host drops what a killed run left behind.

A test that only makes sense on one backend says so: `@only("sqlite")`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import NullPool

from db.engine import make_engine, make_session_maker, upgrade_database
from tests.services import asyncpg_dsn, postgres_admin_url

BACKENDS = ("sqlite", "postgres")
T = TypeVar("T")


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def only(*backends: str) -> pytest.MarkDecorator:
    """Run a test on these backends only (its id still names the backend)."""
    return pytest.mark.parametrize("databases", backends, indirect=True)


class Databases(Protocol):
    """Hands out databases of one backend."""

    backend: str

    def fresh(self) -> str:
        """A database migrated to head with no rows, for one test or one hypothesis example: its URL."""

    def empty(self) -> str:
        """A new database with no tables at all, its own (for migration tests)."""

    def drop(self, url: str) -> None: ...

    def close(self) -> None: ...


# --- SQLite ----------------------------------------------------------------------------------------

class SqliteDatabases:
    backend = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder, self.count = folder, 0
        self.template = folder / "template.db"
        upgrade_database(sqlite_url(self.template))

    def _path(self) -> Path:
        self.count += 1
        return self.folder / f"db{self.count}.db"

    def fresh(self) -> str:
        path = self._path()
        shutil.copyfile(self.template, path)
        return sqlite_url(path)

    def empty(self) -> str:
        return sqlite_url(self._path())

    def drop(self, url: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{make_url(url).database}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        pass


# --- PostgreSQL ------------------------------------------------------------------------------------

class LoopThread:
    """An event loop in a thread of its own, for the admin connection: fixtures and hypothesis examples
    call in from sync code and from inside running loops alike."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pg-admin", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


HOST_TAG = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
OURS = re.compile(rf"^pytest_{HOST_TAG}_(\d+)_")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _tables_children_first(url: str) -> list[str]:
    """Every table the migrations made (read from the database, not the models: a table no test module
    imports is emptied too), each after the tables whose rows point at it."""
    engine = make_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            found = MetaData()
            await connection.run_sync(found.reflect)
    finally:
        await engine.dispose()
    return [t.name for t in reversed(found.sorted_tables) if t.name != "alembic_version"]


class PostgresDatabases:
    backend = "postgres"

    def __init__(self, admin_url: str) -> None:
        import asyncpg

        self.admin_url = admin_url
        self.prefix = f"pytest_{HOST_TAG}_{os.getpid()}_{secrets.token_hex(2)}"
        self.count = 0
        self.live: set[str] = set()
        self.loop = LoopThread()
        self.admin = self.loop.run(asyncpg.connect(asyncpg_dsn(admin_url), timeout=10))
        self._drop_leftovers()
        self.shared = self.empty()
        upgrade_database(self.shared)
        self.shared_conn = self.loop.run(asyncpg.connect(asyncpg_dsn(self.shared), timeout=10))
        sequences = self.loop.run(self.shared_conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"))
        deletes = [f'DELETE FROM "{name}"' for name in self.loop.run(_tables_children_first(self.shared))]
        restarts = [f'ALTER SEQUENCE "{name}" RESTART' for (name,) in sequences]
        # lock_timeout: a transaction left open (and not yet gone after its termination) fails the reset
        # instead of hanging the suite
        self.reset_sql = "; ".join(["SET lock_timeout = '5s'", *deletes, *restarts])

    def url(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def _execute(self, sql: str) -> None:
        self.loop.run(self.admin.execute(sql))

    def _drop_leftovers(self) -> None:
        names = self.loop.run(self.admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'pytest\\_%'"))
        for (name,) in names:
            match = OURS.match(name)
            if match and not _pid_alive(int(match.group(1))):
                self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def fresh(self) -> str:
        """The session's migrated database, emptied: every row deleted (children first), every sequence
        restarted, so ids start at 1 as in a new database. About 3 ms; CREATE DATABASE ... TEMPLATE and
        DROP DATABASE cost 0.1 to 1 s each on this machine (both wait for checkpoints and fsync under
        load), TRUNCATE ... RESTART IDENTITY CASCADE about 17 ms (it replaces every table's files).
        Tests that change the schema must use `empty()` instead."""
        # connections some earlier test leaked would keep their locks; end them first
        self.loop.run(self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2",
            str(make_url(self.shared).database), self.shared_conn.get_server_pid()))
        self.loop.run(self.shared_conn.execute(self.reset_sql))
        return self.shared

    def empty(self) -> str:
        self.count += 1
        name = f"{self.prefix}_{self.count}"
        self._execute(f'CREATE DATABASE "{name}"')
        # No fsync per commit in test databases: the hypothesis machines commit thousands of times, and
        # a crash of the server loses nothing a test needs (this changes durability, never visibility)
        self._execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        self.live.add(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        if url == self.shared:
            return
        name = str(make_url(url).database)
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # FORCE: a leaked connection too
        self.live.discard(name)

    def close(self) -> None:
        try:
            self.loop.run(self.shared_conn.close())
            for name in sorted(self.live):
                self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.loop.run(self.admin.close())
        finally:
            self.loop.close()


@pytest.fixture(scope="session", params=BACKENDS)
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    backend: Databases
    if request.param == "sqlite":
        backend = SqliteDatabases(tmp_path_factory.mktemp("sqlite"))
    else:
        backend = PostgresDatabases(postgres_admin_url())
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def backend(databases: Databases) -> str:
    return databases.backend


@pytest.fixture
def db_url(databases: Databases) -> Iterator[str]:
    """A migrated database with no rows, for this test alone."""
    url = databases.fresh()
    yield url
    databases.drop(url)


@pytest.fixture
def empty_db_url(databases: Databases) -> Iterator[str]:
    """A new database with no tables, for migration tests."""
    url = databases.empty()
    yield url
    databases.drop(url)


class FreshDb:
    """`url = fresh_db.new()`: a migrated database with no rows for one hypothesis example, on the
    session's backend (a copy of the template on SQLite, the emptied session database on PostgreSQL).
    Session-scoped, as hypothesis wants; every example must dispose of its engine before the next asks.
    On PostgreSQL `db_url` and `fresh_db` hand out the same database: a test uses one of them, not both."""

    def __init__(self, databases: Databases) -> None:
        self.databases = databases
        self.backend = databases.backend

    def new(self) -> str:
        return self.databases.fresh()


# Hypothesis on PostgreSQL: every statement is a round trip to the server (SQLite runs in-process), so the
# heaviest property tests (the lifecycle machine, the rollups) run this share of their examples there, via
# `examples(...)` in their settings; SQLite keeps the full count, and every other test runs in full on both.
POSTGRES_EXAMPLE_SHARE = 0.5


def examples(backend: str, count: int) -> int:
    return count if backend == "sqlite" else max(1, round(count * POSTGRES_EXAMPLE_SHARE))


@pytest.fixture(scope="session")
def fresh_db(databases: Databases) -> FreshDb:
    return FreshDb(databases)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_session_maker(engine)
