"""Fixtures of the end-to-end tests: loopback fakes, the bot's environment, the bot subprocess.

Starting `python -m bot` costs seconds (aiogram builds hundreds of pydantic models at import), so tests
that do not need a bot of their own share one (`live`), each with its own Telegram users. Tests that
script provider failures or kill the bot start their own (`start_bot`):

    async def test_x(live: Live):                  # the shared bot, already polling
        live.fakes.telegram.push_message(2101, "hi")

    async def test_y(fakes: Fakes, start_bot: StartBot):
        bot = await start_bot()                    # returns once it long-polls getUpdates

All e2e tests run on one package-wide event loop (the shared fakes live on it): every module sets
`pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]`. The database is read
with plain SQL (sqlite3, read-only), so the tests check what the bot stored without sharing its code.
The bot's log is printed when a test fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.harness import (
    PRIMARY_REPLY,
    SECONDARY_REPLY,
    BotProcess,
    Fakes,
    bot_env,
    start_fakes,
    write_providers_file,
)
from tests.fakes.telegram import FakeTelegram

E2E = pytest_asyncio.fixture


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False) for when in ("setup", "call"))


def _dump(bot: BotProcess, fakes: Fakes, log_from: int = 0) -> None:
    print(f"----- bot log ({bot.log_path}) -----\n{bot.log()[log_from:][-20000:]}")
    print(f"----- Telegram: {fakes.telegram.summary()}")
    print(f"----- Bot API errors answered: {fakes.telegram.errors}")


@pytest.fixture(scope="session")
def mpl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One matplotlib config dir for every run, so its font cache is built once, not per start."""
    return tmp_path_factory.mktemp("mplconfig")


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


# --- a bot per test ------------------------------------------------------------------------------
@E2E(loop_scope="package")
async def fakes() -> AsyncIterator[Fakes]:
    started = await start_fakes()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def providers_file(tmp_path: Path, fakes: Fakes) -> Path:
    return write_providers_file(tmp_path / "providers.toml", fakes)


@pytest.fixture
def env(tmp_path: Path, fakes: Fakes, providers_file: Path, mpl_dir: Path) -> dict[str, str]:
    return bot_env(tmp_path, fakes, providers_file, MPLCONFIGDIR=str(mpl_dir))


StartBot = Callable[..., Awaitable[BotProcess]]


@E2E(loop_scope="package")
async def start_bot(request: pytest.FixtureRequest, tmp_path: Path, fakes: Fakes,
                    env: dict[str, str]) -> AsyncIterator[StartBot]:
    """Starts the bot (again, after a kill) with `env` plus overrides; every run is stopped at the end."""
    runs: list[BotProcess] = []

    async def start(wait: bool = True, **overrides: str) -> BotProcess:
        bot = BotProcess({**env, **overrides}, tmp_path / "bot.log", fakes.telegram)
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
        if runs and _failed(request):
            _dump(runs[-1], fakes)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(tmp_path / "bot.db")


# --- the shared bot ------------------------------------------------------------------------------
@dataclass
class Live:
    fakes: Fakes
    bot: BotProcess
    db: Database

    @property
    def tg(self) -> FakeTelegram:
        return self.fakes.telegram


@E2E(scope="package", loop_scope="package")
async def shared_bot(tmp_path_factory: pytest.TempPathFactory, mpl_dir: Path) -> AsyncIterator[Live]:
    tmp = tmp_path_factory.mktemp("shared-bot")
    started = await start_fakes()
    env = bot_env(tmp, started, write_providers_file(tmp / "providers.toml", started), MPLCONFIGDIR=str(mpl_dir))
    bot = BotProcess(env, tmp / "bot.log", started.telegram)
    try:
        await bot.start()
        yield Live(started, bot, Database(tmp / "bot.db"))
    finally:
        await bot.stop()
        await started.stop()


@E2E(loop_scope="package")
async def live(request: pytest.FixtureRequest, shared_bot: Live) -> AsyncIterator[Live]:
    """The shared bot, with the provider fakes back to their normal answers; its log printed on failure."""
    fakes = shared_bot.fakes
    fakes.primary.reply_text, fakes.secondary.reply_text = PRIMARY_REPLY, SECONDARY_REPLY
    fakes.primary.script.clear()
    fakes.secondary.script.clear()
    log_from = len(shared_bot.bot.log())
    yield shared_bot
    if _failed(request):
        _dump(shared_bot.bot, fakes, log_from)
