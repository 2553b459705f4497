"""External services the tests may use (PostgreSQL, Redis): where they are, and whether they answer.

    url = postgres_admin_url()   # TEST_POSTGRES_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    url = redis_url()            # TEST_REDIS_URL, default redis://127.0.0.1:6379/15

Each service is probed once per test session (per URL), with a short connect timeout. When it does not
answer, the calling test (or fixture) is skipped with the reason, so a machine without the service runs
everything else. With REQUIRE_SERVICES=1 (CI sets it in .ci/run) the same reason fails the test instead:
a missing service never passes as a skip there.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn

import pytest
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
CONNECT_TIMEOUT_S = 2.0

_probed: dict[str, str | None] = {}  # url -> why it is unusable, None when it answered


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") == "1"


def unavailable(message: str) -> NoReturn:
    """Skip with `message`, or fail with it when REQUIRE_SERVICES=1."""
    if services_required():
        pytest.fail(f"{message} (REQUIRE_SERVICES=1: a missing service fails the run)", pytrace=False)
    pytest.skip(message)


def run_blocking(make: Callable[[], Awaitable[object]]) -> object:
    """Run a coroutine to completion from sync code, whether or not an event loop runs in this thread."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, make()).result()  # type: ignore[arg-type]


def _why(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) < 300 else text[:300] + "..."


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from a SQLAlchemy URL (`postgresql+asyncpg://...`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def probe_postgres(url: str) -> str | None:
    """Why PostgreSQL at `url` is unusable (None: it answered `SELECT 1`). Not cached."""
    try:
        import asyncpg
    except ImportError:
        return "the asyncpg package is not installed (pip install asyncpg)"

    async def ping() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_S)
        try:
            await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)
        finally:
            await conn.close()

    try:
        run_blocking(ping)
    except Exception as error:
        return _why(error)
    return None


def probe_redis(url: str) -> str | None:
    """Why Redis at `url` is unusable (None: it answered PING). Not cached."""
    try:
        from redis import asyncio as aioredis
    except ImportError:
        return "the redis package is not installed (pip install redis)"

    async def ping() -> None:
        client = aioredis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        run_blocking(ping)
    except Exception as error:
        return _why(error)
    return None


def require_postgres(url: str) -> str:
    if url not in _probed:
        _probed[url] = probe_postgres(url)
    why = _probed[url]
    if why is not None:
        shown = make_url(url).render_as_string(hide_password=True)
        unavailable(f"PostgreSQL not reachable at {shown}: {why}; set TEST_POSTGRES_URL")
    return url


def require_redis(url: str) -> str:
    if url not in _probed:
        _probed[url] = probe_redis(url)
    why = _probed[url]
    if why is not None:
        unavailable(f"Redis not reachable at {make_url(url).render_as_string(hide_password=True)}: {why}; "
                    "set TEST_REDIS_URL")
    return url


def postgres_admin_url() -> str:
    """A PostgreSQL URL (SQLAlchemy form) whose user may create and drop databases; skips (or fails, with
    REQUIRE_SERVICES=1) when the server does not answer."""
    return require_postgres(os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL)


def redis_url() -> str:
    """A Redis URL (a database the tests may flush); skips (or fails, with REQUIRE_SERVICES=1) when the
    server does not answer."""
    return require_redis(os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL)
