"""The factory: builds everything once (settings in, a ready `BotApp` out) and hands it to the Dispatcher.

Handlers receive these as workflow data: `settings`, `sessions`, `manager`, `scheduler`, `life` (the
owner of every request's life), `generation`, `providers_config`, `db_writes` (group commit; see
`WriteQueue`), `invoices` (signs and reads the payloads of credit-pack invoices). Start-up duties (the
first sweep of orphaned requests, bot commands, a reading of Telegram's Star transactions for payments
whose update was lost, the scheduler with the digest, that reading again, the sweeper and lease renewal)
run in the dispatcher's start-up hook, so polling and webhook modes share them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import BotCommand, BotCommandScopeDefault
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.commands import USER_COMMANDS
from bot.core import Core, build_core
from bot.core import make_bot as make_bot  # where callers have always found it
from bot.errors import StartupError
from bot.handlers import routers
from bot.i18n import LANGUAGES, Translate
from bot.middlewares import setup_middlewares
from bot.services.digest import schedule_digest
from bot.services.generation import GenerationService
from bot.services.invoices import InvoiceSigner
from bot.services.lifecycle import Queue, RequestLife
from bot.services.running import Slots
from bot.services.star_ledger import StarLedger, schedule_reconciliation
from bot.services.sweeper import Sweeper
from bot.services.writes import WriteQueue
from bot.settings import Settings
from bot.shared import SendRates
from providers.config import ProvidersConfig
from providers.manager import ProviderManager


@dataclass
class BotApp:
    """A front: the core every request-running process has (`bot.core`), plus the dispatcher, the
    scheduler and what only fronts do."""

    core: Core
    dp: Dispatcher
    scheduler: AsyncIOScheduler
    generation: GenerationService
    stars: StarLedger  # reconciles Telegram's list of Star transactions with the payments table
    _stopping: bool = False

    # the core's parts, by the names handlers, hooks and tests know them
    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def config(self) -> ProvidersConfig:
        return self.core.config

    @property
    def engine(self) -> AsyncEngine:
        return self.core.engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.core.sessions

    @property
    def bot(self) -> Bot:
        return self.core.bot

    @property
    def manager(self) -> ProviderManager:
        return self.core.manager

    @property
    def slots(self) -> Slots:
        return self.core.slots

    @property
    def life(self) -> RequestLife:
        return self.core.life

    @property
    def sweeper(self) -> Sweeper:
        return self.core.sweeper

    @property
    def writes(self) -> WriteQueue:
        return self.core.writes

    @property
    def media_client(self) -> httpx.AsyncClient:
        return self.core.media_client

    async def on_startup(self) -> None:
        await self.core.start()
        if self.settings.metrics_port and not self.life.metrics.servers:  # GET /metrics (Prometheus)
            await self.life.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        if self.life.queue is None:  # in the distributed mode orphans are the workers' to finish
            taken = await self.sweeper.sweep()
            if taken:
                logger.info("took over {} request(s) an earlier run left open", taken)
        await self.set_commands()
        if self.settings.stars_reconcile_minutes:  # before the first update: a payment lost in a crash
            await self.stars.scheduled()
        if not self.scheduler.running:
            self.scheduler.start()

    async def on_shutdown(self) -> None:
        if self._stopping:  # the dispatcher's hook and aclose() both get here
            return
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.slots.shutdown()

    async def wait_for_telegram(self, *, delete_webhook: bool, first_delay_s: float = 1.0,
                                max_delay_s: float = 60.0) -> None:
        """Wait, with backoff, until Telegram answers (and, for polling, drop any webhook).

        aiogram's start_polling calls getMe once and gives up on a network error, and a failed setWebhook
        would end webhook mode: a bot started while its network or local Bot API server is down would exit.
        """
        delay = first_delay_s
        while True:
            try:
                if delete_webhook:
                    await self.bot.delete_webhook(drop_pending_updates=False)
                await self.bot.me()
                return
            except TelegramUnauthorizedError as exc:
                raise StartupError("Telegram refused BOT_TOKEN (401 Unauthorized): check it with @BotFather") \
                    from exc
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as exc:
                # a local Bot API server still starting, or Telegram's own 5xx / flood wait: all pass
                wait = max(delay, float(getattr(exc, "retry_after", 0) or 0))
                logger.warning("Telegram is not reachable yet ({}); trying again in {:g} s", exc.message, wait)
                await asyncio.sleep(wait)
                delay = min(delay * 2, max_delay_s)

    async def set_commands(self) -> None:
        """The command menu, in English by default and in each other language for its users."""
        for lang in LANGUAGES:
            t = Translate(lang)
            commands = [BotCommand(command=c, description=t(f"commands.{c}")) for c in USER_COMMANDS]
            try:
                await self.bot.set_my_commands(commands, scope=BotCommandScopeDefault(),
                                               language_code=None if lang == "en" else lang)
            except TelegramAPIError as exc:  # a menu is a nicety; never a reason not to start
                logger.warning("setMyCommands ({}) failed: {}", lang, exc)

    async def aclose(self) -> None:
        """Release everything; safe to call after the hooks ran, and twice."""
        with contextlib.suppress(Exception):
            await self.on_shutdown()
        await self.core.aclose()


def build_app(settings: Settings, config: ProvidersConfig, queue: Queue | None = None,
              send_rates: SendRates | None = None) -> BotApp:
    """`queue` set: a front of the distributed mode (the workers run the requests, and their sweepers).
    `send_rates`: the Bot API send limits (Telegram's by default)."""
    core = build_core(settings, config, queue, send_rates)
    sessions, bot, manager, life = core.sessions, core.bot, core.manager, core.life
    generation = GenerationService(settings, manager.catalogue, core.answers, life)
    scheduler = AsyncIOScheduler(timezone=settings.tz)
    schedule_digest(scheduler, bot, sessions, settings, manager, once=core.shared.claims)
    invoices = InvoiceSigner.for_settings(settings)
    stars = StarLedger(bot, sessions, core.writes, invoices, settings, core.shared.claims)
    schedule_reconciliation(scheduler, stars, settings)
    if queue is None:
        core.sweeper.schedule(scheduler, settings.sweep_interval_seconds, settings.request_lease_seconds)
    dp = Dispatcher(storage=core.shared.storage, settings=settings, sessions=sessions, manager=manager,
                    scheduler=scheduler, life=life, generation=generation, providers_config=config,
                    db_writes=core.writes, invoices=invoices)
    setup_middlewares(dp, settings, core.shared)
    dp.include_routers(*routers())
    app = BotApp(core, dp, scheduler, generation, stars)
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app
