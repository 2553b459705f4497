"""The factory: builds everything once (settings in, a ready `BotApp` out) and hands it to the Dispatcher.

Handlers receive these as workflow data: `settings`, `sessions`, `manager`, `scheduler`, `life` (the
owner of every request's life), `generation`, `providers_config`, `db_writes` (group commit; see
`WriteQueue`). Start-up duties (the first sweep of orphaned requests, bot commands, the scheduler with
the digest, the sweeper and lease renewal) run in the dispatcher's start-up hook, so polling and webhook
modes share them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
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

from bot.errors import StartupError
from bot.handlers import routers
from bot.i18n import LANGUAGES, Translate
from bot.metrics import Metrics
from bot.middlewares import setup_middlewares
from bot.services.alerts import AlertNotifier
from bot.services.answers import Answers
from bot.services.digest import schedule_digest
from bot.services.generation import GenerationService
from bot.services.leases import Leases, new_owner_id
from bot.services.lifecycle import RequestLife
from bot.services.running import Slots
from bot.services.sweeper import Sweeper
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.engine import make_engine, make_session_maker
from providers.config import ProvidersConfig
from providers.manager import ProviderManager

USER_COMMANDS = ("start", "help", "new", "model", "image", "edit", "video", "tts", "balance", "cancel",
                 "language")


def make_bot(settings: Settings) -> Bot:
    """A Bot for Telegram, or for the local Bot API server at TELEGRAM_API_URL; HTML by default."""
    session = None
    if settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(settings.bot_token.get_secret_value(), session=session,
               default=DefaultBotProperties(parse_mode=ParseMode.HTML))


@dataclass
class BotApp:
    settings: Settings
    config: ProvidersConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bot: Bot
    manager: ProviderManager
    dp: Dispatcher
    scheduler: AsyncIOScheduler
    slots: Slots
    life: RequestLife
    sweeper: Sweeper
    generation: GenerationService
    writes: WriteQueue
    media_client: httpx.AsyncClient
    _stopping: bool = False

    async def on_startup(self) -> None:
        if self.settings.metrics_port and not self.life.metrics.servers:  # GET /metrics (Prometheus)
            await self.life.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        taken = await self.sweeper.sweep()
        if taken:
            logger.info("took over {} request(s) an earlier run left open", taken)
        await self.set_commands()
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
        await self.life.metrics.aclose()
        await self.writes.aclose()
        await self.manager.aclose()
        await self.media_client.aclose()
        await self.bot.session.close()
        await self.engine.dispose()


def build_app(settings: Settings, config: ProvidersConfig) -> BotApp:
    engine = make_engine(settings.database_url)
    sessions = make_session_maker(engine)
    bot = make_bot(settings)
    manager = ProviderManager(config, on_alert=AlertNotifier(bot, settings, sessions=sessions))
    catalogue = manager.catalogue
    logger.info("providers enabled: {}", ", ".join(catalogue.enabled_providers()) or "none (set their API keys)")
    writes = WriteQueue.for_url(sessions, settings.database_url)
    # redirects are followed by hand in providers.outbound, each hop checked: never by the client itself
    media_client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0), follow_redirects=False)
    answers = Answers(settings, manager, media_client)
    slots, leases = Slots(), Leases(new_owner_id(), settings.request_lease_seconds)
    metrics = Metrics()
    metrics.watch_providers(manager.health_snapshot, manager.clock.now)  # cooldowns and circuits, at scrape time
    metrics.set_queue_depth_source(slots.waiting)
    life = RequestLife(settings, writes, manager, bot, answers, slots, leases, metrics=metrics)
    sweeper = Sweeper(life, sessions)
    generation = GenerationService(settings, catalogue, answers, life)
    scheduler = AsyncIOScheduler(timezone=settings.tz)
    schedule_digest(scheduler, bot, sessions, settings, manager)
    schedule_request_duties(scheduler, sweeper, settings)
    dp = Dispatcher(settings=settings, sessions=sessions, manager=manager, scheduler=scheduler, life=life,
                    generation=generation, providers_config=config, db_writes=writes)
    setup_middlewares(dp, settings)
    dp.include_routers(*routers())
    app = BotApp(settings, config, engine, sessions, bot, manager, dp, scheduler, slots, life, sweeper, generation,
                 writes, media_client)
    dp.startup.register(app.on_startup)
    dp.shutdown.register(app.on_shutdown)
    return app


def schedule_request_duties(scheduler: AsyncIOScheduler, sweeper: Sweeper, settings: Settings) -> None:
    """The sweeper every SWEEP_INTERVAL_SECONDS, and lease renewal every third of a lease."""
    scheduler.add_job(sweeper.sweep, "interval", seconds=settings.sweep_interval_seconds, id="sweep",
                      coalesce=True, max_instances=1, replace_existing=True)
    scheduler.add_job(sweeper.renew_leases, "interval", seconds=settings.request_lease_seconds / 3, id="leases",
                      coalesce=True, max_instances=1, replace_existing=True)
