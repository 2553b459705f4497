"""What the bot's processes share: the Telegram send limiter, per-user flood control, once-only claims
(provider alerts, the daily digest), update de-duplication and the aiogram FSM storage.

Each piece is a small protocol with a local implementation (this process's memory: the embedded default,
no Redis, no cost) and a Redis one (REDIS_URL set), built once by `build_shared`. A Redis piece that
cannot reach Redis answers from its local twin and logs a WARNING: a user's update never fails for it.
Keys live under `bot:<bot id>:` so bots sharing one Redis do not mix.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.fsm.storage.base import BaseStorage

from bot.settings import Settings
from bot.shared.dedup import LocalSeenUpdates, RedisSeenUpdates, SeenUpdates
from bot.shared.fsm import SharedStorage
from bot.shared.limiter import LocalSendLimiter, RedisSendLimiter, SendLimiter, SendLimitMiddleware, SendRates
from bot.shared.once import Claims, LocalClaims, RedisClaims
from bot.shared.throttle import FloodGate, LocalFloodGate, RedisFloodGate

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["SendRates", "Shared", "build_shared", "key_prefix"]


@dataclass
class Shared:
    limiter: SendLimiter
    flood: FloodGate
    claims: Claims
    seen: SeenUpdates
    storage: BaseStorage | None  # None: the Dispatcher's own MemoryStorage
    redis: Redis | None = None

    def install(self, bot: Bot) -> None:
        """Send every request of `bot` through the limiter (once, however often it is called)."""
        if not any(isinstance(m, SendLimitMiddleware) for m in bot.session.middleware):
            bot.session.middleware(SendLimitMiddleware(self.limiter))

    async def aclose(self) -> None:
        if self.storage is not None:
            with contextlib.suppress(Exception):
                await self.storage.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()


def key_prefix(settings: Settings) -> str:
    """`bot:<bot id>:`: the token's public part (the bot's user id), never its secret."""
    return f"bot:{settings.bot_token.get_secret_value().split(':', 1)[0] or 'none'}:"


def build_shared(settings: Settings, *, rates: SendRates | None = None, redis: Redis | None = None,
                 prefix: str | None = None) -> Shared:
    """Redis pieces when REDIS_URL is set (or `redis` is given), else local ones. The client is lazy: it
    connects on first use, so building never fails on Redis being down."""
    rates = rates or SendRates(per_chat_s=settings.telegram_chat_sends_per_second,
                               global_s=settings.telegram_sends_per_second)
    if redis is None and settings.redis_url is not None:
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url.get_secret_value())
    if redis is None:
        return Shared(LocalSendLimiter(rates), LocalFloodGate(settings.throttle_rate, settings.throttle_window),
                      LocalClaims(), LocalSeenUpdates(), None)
    prefix = prefix if prefix is not None else key_prefix(settings)
    return Shared(RedisSendLimiter(redis, prefix, rates),
                  RedisFloodGate(redis, prefix, settings.throttle_rate, settings.throttle_window),
                  RedisClaims(redis, prefix), RedisSeenUpdates(redis, prefix), SharedStorage(redis, prefix), redis)
