"""What the bot's processes share (bot.shared), against the real Redis: two instances of a piece stand for
two processes. Each test uses its own key prefix; Redis absent skips them (fails with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update, User
from redis.asyncio import Redis

from bot.middlewares.dedup import UpdateDedup
from bot.middlewares.throttling import Throttling
from bot.services.alerts import AlertNotifier
from bot.services.digest import send_digest
from bot.settings import Settings
from bot.shared import Shared, build_shared
from bot.shared.dedup import RedisSeenUpdates
from bot.shared.fsm import SharedStorage
from bot.shared.limiter import RedisSendLimiter, SendLimitMiddleware, SendRates
from bot.shared.once import RedisClaims
from bot.shared.throttle import RedisFloodGate
from db.engine import make_engine, make_session_maker
from providers.errors import ErrorKind
from providers.health import Alert
from tests.bot.admin_support import ADMIN, admin_harness
from tests.fakes.telegram import FakeTelegram
from tests.services import redis_url

CHAT = 4242


@pytest.fixture
async def url() -> str:
    return redis_url()


@pytest.fixture
async def prefix(url: str) -> AsyncIterator[str]:
    name = f"test:{uuid.uuid4().hex}:"
    yield name
    client = Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"{name}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def clients(url: str) -> AsyncIterator[list[Redis]]:
    """Two connections, as two processes have."""
    made = [Redis.from_url(url), Redis.from_url(url)]
    yield made
    for client in made:
        await client.aclose()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server  # type: ignore[misc]


def limited_bot(fake: FakeTelegram, redis: Redis, prefix: str, rates: SendRates) -> Bot:
    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url), timeout=5))
    bot.session.middleware(SendLimitMiddleware(RedisSendLimiter(redis, prefix, rates)))
    return bot


def most_in_a_second(times: list[float]) -> int:
    """The most sends in any half-open 1 s window."""
    times = sorted(times)
    return max((sum(1 for t in times if start <= t < start + 1.0) for start in times), default=0)


def send_times(fake: FakeTelegram, chat: int) -> list[float]:
    return [m.history_at[0] for m in fake.sent[chat]]


async def test_two_limiters_keep_one_chat_within_its_rate(fake: FakeTelegram, clients: list[Redis],
                                                          prefix: str) -> None:
    rates = SendRates(per_chat_s=8, chat_burst=1, global_s=1000, global_burst=100)
    bots = [limited_bot(fake, client, prefix, rates) for client in clients]
    try:
        await asyncio.gather(*(bot.send_message(CHAT, f"{n}-{i}") for i in range(6) for n, bot in enumerate(bots)))
    finally:
        for bot in bots:
            await bot.session.close()
    times = send_times(fake, CHAT)
    assert len(times) == 12
    assert most_in_a_second(times) <= 8 + 1  # one of tolerance: the fake stamps on arrival, not on sending


async def test_two_limiters_keep_the_bot_within_its_global_rate(fake: FakeTelegram, clients: list[Redis],
                                                                prefix: str) -> None:
    rates = SendRates(per_chat_s=100, chat_burst=5, global_s=8, global_burst=1)
    bots = [limited_bot(fake, client, prefix, rates) for client in clients]
    try:
        await asyncio.gather(*(bot.send_message(1000 + i, "hi") for i in range(6) for bot in bots))
    finally:
        for bot in bots:
            await bot.session.close()
    times = [t for chat in range(1000, 1006) for t in send_times(fake, chat)]
    assert len(times) == 12
    assert most_in_a_second(times) <= 8 + 1


async def test_a_429_seen_by_one_process_pauses_the_chat_for_both(fake: FakeTelegram, clients: list[Redis],
                                                                  prefix: str) -> None:
    rates = SendRates(per_chat_s=100, chat_burst=10)
    first, second = (limited_bot(fake, client, prefix, rates) for client in clients)
    loop = asyncio.get_running_loop()
    try:
        fake.rate_limit("sendMessage", times=1, retry_after=1)
        began = loop.time()
        sending = asyncio.create_task(first.send_message(CHAT, "one"))  # 429, waits, sends again
        await fake.wait_for(lambda: bool(fake.errors), timeout=2)
        await second.send_message(CHAT, "two")  # told by Redis: the chat is paused
        await sending
        await second.send_message(CHAT + 1, "another chat")  # not paused
    finally:
        await first.session.close()
        await second.session.close()
    assert sorted(m.text or "" for m in fake.sent[CHAT]) == ["one", "two"]
    assert min(send_times(fake, CHAT)) >= began + 1.0 - 0.05  # nothing reached the chat within retry_after
    assert len(fake.errors) == 1  # the second process never hit the flood itself


async def test_throttling_is_shared_by_two_middlewares(clients: list[Redis], prefix: str) -> None:
    gates = [Throttling(3, 10.0, gate=RedisFloodGate(client, prefix, 3, 10.0)) for client in clients]
    handled: list[int] = []

    async def handler(event: Any, data: dict[str, Any]) -> None:
        handled.append(1)

    user = User(id=77, is_bot=False, first_name="U")
    for n in range(6):
        await gates[n % 2](handler, object(), {"event_from_user": user})  # type: ignore[arg-type]
    assert len(handled) == 3
    verdicts = [await gates[0].gate.hit(77), await gates[1].gate.hit(77)]
    assert [v.allowed for v in verdicts] == [False, False]
    assert await gates[1].gate.hit(78) == (True, False)  # another user has their own counts


async def test_throttling_warns_once_per_window_across_processes(clients: list[Redis], prefix: str) -> None:
    gates = [RedisFloodGate(client, prefix, 1, 10.0) for client in clients]
    assert await gates[0].hit(5) == (True, False)
    assert await gates[1].hit(5) == (False, True)  # the first refusal is told to slow down...
    assert await gates[0].hit(5) == (False, False)  # ...once, whichever process refuses next


async def test_one_update_is_served_once_by_two_fronts(clients: list[Redis], prefix: str) -> None:
    fronts = [UpdateDedup(seen=RedisSeenUpdates(client, prefix)) for client in clients]
    served: list[int] = []

    async def handler(event: Any, data: dict[str, Any]) -> None:
        served.append(event.update_id)

    update = Update(update_id=912345)
    await asyncio.gather(*(front(handler, update, {}) for front in fronts))
    await fronts[1](handler, update, {})
    await fronts[0](handler, Update(update_id=912346), {})
    assert served == [912345, 912346]


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **{"bot_token": "123456789:AAFakeTokenForTests_abcdefghijklmno",
                                       **values})


async def test_an_alert_raised_in_two_processes_is_told_once(fake: FakeTelegram, clients: list[Redis],
                                                             prefix: str) -> None:
    settings = _settings(admin_ids="1001")
    engine = make_engine("sqlite+aiosqlite://")  # no tables: admins' languages unknown, English
    bots = [Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url))) for _ in clients]
    notifiers = [AlertNotifier(bot, settings, sessions=make_session_maker(engine), claims=RedisClaims(c, prefix))
                 for bot, c in zip(bots, clients, strict=True)]
    until = datetime.now(UTC) + timedelta(hours=1)
    try:
        await asyncio.gather(  # the same incident, seen a moment apart by each process's own health
            notifiers[0](Alert("alpha", ErrorKind.QUOTA_EXHAUSTED, "quota", until)),
            notifiers[1](Alert("alpha", ErrorKind.QUOTA_EXHAUSTED, "quota", until + timedelta(seconds=2))))
        await notifiers[1](Alert("alpha", ErrorKind.AUTH, "key refused", until))  # another kind: told
    finally:
        for bot in bots:
            await bot.session.close()
        await engine.dispose()
    assert len(fake.sent[1001]) == 2


async def test_the_daily_digest_is_sent_once_by_two_processes(tmp_path: Path, clients: list[Redis],
                                                              prefix: str) -> None:
    async with admin_harness(tmp_path) as h:
        app = h.live
        claims = [RedisClaims(client, prefix) for client in clients]
        reached = await asyncio.gather(*(send_digest(app.bot, app.sessions, app.settings, app.manager,
                                                     chat_ids=[ADMIN], once=c) for c in claims))
        assert sorted(reached, key=len) == [[], [ADMIN]]
        assert len(h.tg.media(ADMIN, "photo")) == 1
        await send_digest(app.bot, app.sessions, app.settings, app.manager, chat_ids=[ADMIN])  # /digest: always
        assert len(h.tg.media(ADMIN, "photo")) == 2


async def test_fsm_state_is_seen_by_another_process(clients: list[Redis], prefix: str) -> None:
    first, second = (SharedStorage(client, prefix) for client in clients)
    key = StorageKey(bot_id=1, chat_id=2, user_id=3)
    await first.set_state(key, "Form:name")
    await first.set_data(key, {"step": 1})
    assert await second.get_state(key) == "Form:name"
    assert await second.get_data(key) == {"step": 1}


async def test_build_shared_uses_redis_when_distributed(url: str) -> None:
    shared = build_shared(_settings(redis_url=url))
    try:
        assert shared.redis is not None and isinstance(shared.storage, SharedStorage)
        assert isinstance(shared.limiter, RedisSendLimiter)
    finally:
        await shared.aclose()


async def test_redis_down_degrades_to_local_with_a_warning(caplog_loguru: list[str]) -> None:
    dead = Redis.from_url("redis://:hunter2secret@127.0.0.1:1/0", socket_connect_timeout=0.5)
    shared: Shared = build_shared(_settings(throttle_rate=1), redis=dead, prefix="test:dead:")
    try:
        slot = await shared.limiter.reserve(CHAT, cost=1, max_wait=None)
        assert slot.reserved and slot.wait == 0
        assert await shared.flood.hit(1) == (True, False)
        assert await shared.flood.hit(1) == (False, True)  # the local gate keeps the same rule
        assert await shared.claims.claim("digest:x", 60) is True
        assert await shared.claims.claim("digest:x", 60) is False
        assert await shared.seen.first(1) is True and await shared.seen.first(1) is False
        assert shared.storage is not None and await shared.storage.get_state(StorageKey(1, 2, 3)) is None
    finally:
        await shared.aclose()
    assert any("redis unavailable" in line for line in caplog_loguru)
    assert not any("hunter2secret" in line for line in caplog_loguru)


@pytest.fixture
def caplog_loguru() -> Any:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING")
    yield lines
    logger.remove(sink)
