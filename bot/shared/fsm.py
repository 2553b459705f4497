"""aiogram FSM storage in Redis for every process, that never fails an update when Redis does: aiogram
reads the state of every update's chat, so a Redis outage would otherwise fail them all. While Redis
fails, states are kept in this process's memory (a WARNING is logged)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage

from bot.shared.base import Degraded, redis_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis


class SharedStorage(BaseStorage):
    def __init__(self, redis: Redis, prefix: str) -> None:
        from aiogram.fsm.storage.redis import RedisStorage  # loads redis: only for a bot with REDIS_URL

        self.redis_storage = RedisStorage(redis, key_builder=DefaultKeyBuilder(prefix=f"{prefix}fsm"))
        self.local = MemoryStorage()
        self._degraded = Degraded("FSM storage")

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        try:
            await self.redis_storage.set_state(key, state)
        except redis_errors() as exc:
            self._degraded.warn(exc)
            await self.local.set_state(key, state)

    async def get_state(self, key: StorageKey) -> str | None:
        try:
            return await self.redis_storage.get_state(key)
        except redis_errors() as exc:
            self._degraded.warn(exc)
            return await self.local.get_state(key)

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        try:
            await self.redis_storage.set_data(key, data)
        except redis_errors() as exc:
            self._degraded.warn(exc)
            await self.local.set_data(key, data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        try:
            return await self.redis_storage.get_data(key)
        except redis_errors() as exc:
            self._degraded.warn(exc)
            return await self.local.get_data(key)

    async def close(self) -> None:
        await self.local.close()  # the Redis client is the factory's to close
