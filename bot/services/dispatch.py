"""The distributed mode's hand-off between fronts and workers, over Redis (see `bot.queue`).

    front   reserve (under a per-user lock, so two fronts never both open a request for one user)
            -> enqueue a `Job` on the taskiq stream broker
            /cancel: the database decides (`cancel_open`), then a signal on a pub/sub channel tells the
            worker that runs the request to stop it (or to stop delivering it)
    worker  takes the job with one guarded update (reserved -> running, under its own lease), runs the
            same work one process runs, and closes the request; a message delivered again finds the
            request taken and is dropped
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.queue import TASK_NAME, Job, queue_name
from bot.shared.base import uncancellable
from db.periods import utcnow

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from taskiq_redis import RedisStreamBroker

# A lock held only while a reservation is written; expires by itself if its front dies meanwhile.
RESERVING_LOCK_MS = 10_000
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def make_broker(url: str, prefix: str, idle_s: float) -> RedisStreamBroker:
    """The stream broker: one consumer group of workers; a message left unacknowledged `idle_s` (its
    worker died before it took the request) is claimed by another worker."""
    from taskiq_redis import RedisStreamBroker

    return RedisStreamBroker(url, queue_name=queue_name(prefix), consumer_group_name=f"{prefix}workers",
                             idle_timeout=int(idle_s * 1000), xread_block=1000)


class RedisQueue:
    """A front's side: implements `bot.services.lifecycle.Queue`."""

    def __init__(self, broker: RedisStreamBroker, redis: Redis, prefix: str, wait_s: float) -> None:
        self.broker, self.redis, self.prefix = broker, redis, prefix
        self.wait = timedelta(seconds=wait_s)

    def lease_until(self) -> datetime:
        return utcnow() + self.wait

    async def enqueue(self, job: Job) -> None:
        from taskiq.kicker import AsyncKicker

        kicker: AsyncKicker[[dict[str, Any]], None] = AsyncKicker(TASK_NAME, self.broker, {})
        await kicker.kiq(job.to_wire())

    @contextlib.asynccontextmanager
    async def reserving(self, user_id: int) -> AsyncIterator[bool]:
        """True while this front alone reserves for the user; False when another one is at it."""
        key, token = f"{self.prefix}reserving:{user_id}", secrets.token_hex(8)
        got = bool(await uncancellable(self.redis.set(key, token, nx=True, px=RESERVING_LOCK_MS)))
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(Exception):
                    await uncancellable(self.redis.eval(_UNLOCK, 1, key, token))

    async def stop(self, canceled: list[int], delivering: list[int]) -> None:
        if canceled or delivering:
            message = json.dumps({"canceled": canceled, "delivering": delivering})
            await self.redis.publish(stop_channel(self.prefix), message)


def stop_channel(prefix: str) -> str:
    return f"{prefix}stop"


async def listen_for_stops(redis: Redis, prefix: str, on_stop: Callable[[list[int], list[int]], None],
                           ready: asyncio.Event | None = None) -> None:
    """A worker's side of /cancel: every stop signal is handed to `on_stop`; reconnects after a failure."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(stop_channel(prefix))
                if ready is not None:
                    ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data: dict[str, Any] = json.loads(message["data"])
                        on_stop([int(i) for i in data.get("canceled", [])],
                                [int(i) for i in data.get("delivering", [])])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("stop signals: {} ({}); listening again in 1 s", type(exc).__name__, exc)
            await asyncio.sleep(1.0)
