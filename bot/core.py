"""What every process that runs requests is built from: a front of one process, and a worker.

`build_core` makes, once: the database engine and sessions, the `Bot`, the provider manager, the write
queue, the media client, and the owner of every request's life with its slots, leases and sweeper.
`bot.app` adds the dispatcher and the scheduler of a front; `bot.worker` the queue consumer of a worker.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import httpx
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.metrics import Metrics
from bot.services.alerts import AlertNotifier
from bot.services.answers import Answers
from bot.services.leases import Leases, new_owner_id
from bot.services.lifecycle import Queue, RequestLife
from bot.services.running import Slots
from bot.services.sweeper import Sweeper
from bot.services.writes import WriteQueue
from bot.settings import Settings
from bot.shared import SendRates, Shared, build_shared
from db.engine import make_engine, make_session_maker
from providers.config import ProvidersConfig
from providers.manager import ProviderManager
from providers.shared import make_shared_state


def freeze_startup_heap() -> None:
    """Once everything is imported and built: move what exists now out of the garbage collector's sight.

    aiogram's hundreds of pydantic models and the rest of start-up stay alive for the whole run; every full
    collection walked them all again, a pause of 60-75 ms on the event loop (seen as the slowest edit of a
    streamed answer). Frozen, a full collection only walks what was made since: about 10 ms.
    """
    gc.collect()
    gc.freeze()


def make_bot(settings: Settings) -> Bot:
    """A Bot for Telegram, or for the local Bot API server at TELEGRAM_API_URL; HTML by default."""
    session = None
    if settings.telegram_api_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    return Bot(settings.bot_token.get_secret_value(), session=session,
               default=DefaultBotProperties(parse_mode=ParseMode.HTML))


@dataclass
class Core:
    settings: Settings
    config: ProvidersConfig
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bot: Bot
    manager: ProviderManager
    writes: WriteQueue
    media_client: httpx.AsyncClient
    answers: Answers
    slots: Slots
    life: RequestLife
    sweeper: Sweeper
    metrics: Metrics  # served at /metrics when METRICS_PORT is set
    shared: Shared  # what the processes of the distributed mode share (local ones otherwise)

    async def start(self) -> None:
        """Connect what is shared with other processes (never fails for an unreachable Redis)."""
        await self.manager.start()

    async def aclose(self) -> None:
        await self.metrics.aclose()  # any /metrics server started on it
        await self.shared.aclose()
        await self.writes.aclose()
        await self.manager.aclose()
        await self.media_client.aclose()
        await self.bot.session.close()
        await self.engine.dispose()


def build_core(settings: Settings, config: ProvidersConfig, queue: Queue | None = None,
               send_rates: SendRates | None = None) -> Core:
    """`queue`: a front of the distributed mode reserves requests and hands them to the workers.
    `send_rates`: the Bot API send limits (Telegram's by default)."""
    engine = make_engine(settings.database_url)
    sessions = make_session_maker(engine)
    bot = make_bot(settings)
    shared = build_shared(settings, rates=send_rates)  # in Redis when REDIS_URL is set, else this process's own
    shared.install(bot)  # every Bot API call through the send limiter
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    # one process tells each incident once by itself; processes together, through a claim in Redis
    claims = shared.claims if settings.distributed else None
    manager = ProviderManager(config, on_alert=AlertNotifier(bot, settings, sessions=sessions, claims=claims),
                              max_media_bytes=settings.max_media_bytes,  # inline media bodies too
                              shared=make_shared_state(redis_url))  # health and budgets across processes
    logger.info("providers enabled: {}",
                ", ".join(manager.catalogue.enabled_providers()) or "none (set their API keys)")
    writes = WriteQueue.for_url(sessions, settings.database_url)
    # redirects are followed by hand in providers.outbound, each hop checked: never by the client itself
    media_client = httpx.AsyncClient(timeout=httpx.Timeout(120.0, connect=10.0), follow_redirects=False)
    answers = Answers(settings, manager, media_client)
    slots, leases = Slots(), Leases(new_owner_id(), settings.request_lease_seconds)
    metrics = Metrics()
    metrics.watch_providers(manager.health_snapshot, manager.clock.now)  # cooldowns and circuits, at scrape time
    metrics.set_queue_depth_source(slots.waiting)
    life = RequestLife(settings, writes, manager, bot, answers, slots, leases, queue, metrics=metrics)
    return Core(settings, config, engine, sessions, bot, manager, writes, media_client, answers, slots, life,
                Sweeper(life, sessions), metrics, shared)
