"""Fixtures of the end-to-end tests: loopback fakes, the bot's environment, the bot subprocess.

    async def test_x(fakes, start_bot):
        bot = await start_bot()              # `python -m bot`, returns once it long-polls getUpdates
        fakes.telegram.push_message(2002, "hi")

The database is read with plain SQL (sqlite3, read-only) so the tests check what the bot stored without
sharing its code. The bot's log is printed when a test fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import BotProcess, Fakes, bot_env, write_providers_file


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    started = await Fakes.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def providers_file(tmp_path: Path, fakes: Fakes) -> Path:
    return write_providers_file(tmp_path / "providers.toml", fakes)


@pytest.fixture
def env(tmp_path: Path, fakes: Fakes, providers_file: Path) -> dict[str, str]:
    return bot_env(tmp_path, fakes, providers_file)


StartBot = Callable[..., Awaitable[BotProcess]]


@pytest.fixture
async def start_bot(request: pytest.FixtureRequest, tmp_path: Path, fakes: Fakes,
                    env: dict[str, str]) -> AsyncIterator[StartBot]:
    """Starts the bot (again, after a kill) with `env` plus overrides; every run is stopped at the end."""
    runs: list[BotProcess] = []
    log_path = tmp_path / "bot.log"

    async def start(wait: bool = True, **overrides: str) -> BotProcess:
        bot = BotProcess({**env, **overrides}, log_path, fakes.telegram)
        runs.append(bot)
        if wait:
            return await bot.start()
        await bot.spawn()
        return bot

    try:
        yield start
    finally:
        for bot in runs:
            await bot.stop()
        failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
                     for when in ("setup", "call"))
        if failed and runs:
            print(f"----- bot log ({log_path}) -----\n{runs[-1].log()[-20000:]}")
            print(f"----- Telegram: {fakes.telegram.summary()}")
            print(f"----- Bot API errors answered: {fakes.telegram.errors}")


class Database:
    """Read-only look into the bot's SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def credits(self, user_id: int) -> int | None:
        rows = self.rows("SELECT credits FROM users WHERE id = ?", user_id)
        return int(rows[0]["credits"]) if rows else None

    def requests(self, user_id: int) -> list[sqlite3.Row]:
        return self.rows("SELECT * FROM requests WHERE user_id = ? ORDER BY id", user_id)

    def job_ids(self) -> list[str]:
        return [r["provider_job_id"] for r in
                self.rows("SELECT provider_job_id FROM requests WHERE provider_job_id IS NOT NULL")]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "bot.db")
