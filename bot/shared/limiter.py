"""The Telegram send limiter: paces sends per chat and per bot, and shares every 429 between processes.

GCRA (a token bucket kept as one "theoretical arrival time" per key): a send *reserves* the earliest
moment both its chat and the whole bot allow, and the caller sleeps until then, so sends queue up in
order instead of failing. A 429 from Telegram sets a pause on its chat (or on the whole bot for a method
without a chat) that every later reservation waits for, in every process sharing the limiter.

`LocalSendLimiter` keeps it in this process (the embedded default). `RedisSendLimiter` keeps it in Redis,
one Lua script per reservation (atomic, one round trip, Redis's own clock, so processes need not agree on
time); when Redis fails it answers from a local limiter and logs a WARNING.

`SendLimitMiddleware` is the aiogram session request middleware that applies it to a Bot.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from loguru import logger

from bot.services.telegram_retry import current_patience, mark_gave_up
from bot.shared.base import Degraded, redis_errors, uncancellable

if TYPE_CHECKING:
    from redis.asyncio import Redis

ChatKey = int | str | None  # None: a send that belongs to no chat (an inline message): the bot-wide limit only


@dataclass(frozen=True, slots=True)
class SendRates:
    """Telegram's published limits: about 1 message a second in one chat (short bursts pass), 20 a minute
    in a group, about 30 a second for the whole bot."""

    per_chat_s: float = 1.0
    chat_burst: int = 3  # sends one chat may get at once before the pace applies
    group_per_minute: float = 20.0  # chats with a negative id (groups, channels) and @channel names
    group_burst: int = 3
    global_s: float = 30.0
    global_burst: int = 5

    @classmethod
    def unpaced(cls) -> SendRates:
        """No pacing to speak of, 429 pauses still shared: for tests that send dozens of messages in a row."""
        return cls(per_chat_s=1e6, chat_burst=1000, group_per_minute=6e7, group_burst=1000, global_s=1e6,
                   global_burst=1000)

    def chat_interval(self, chat: ChatKey) -> tuple[float, float]:
        """(seconds between sends, burst tolerance in seconds) for `chat`."""
        if isinstance(chat, str) or (isinstance(chat, int) and chat < 0):
            interval = 60.0 / self.group_per_minute
            return interval, interval * (self.group_burst - 1)
        interval = 1.0 / self.per_chat_s
        return interval, interval * (self.chat_burst - 1)

    @property
    def global_interval(self) -> tuple[float, float]:
        interval = 1.0 / self.global_s
        return interval, interval * (self.global_burst - 1)


class Slot(NamedTuple):
    reserved: bool  # False: the wait was over the caller's max_wait, and nothing was taken
    wait: float  # seconds until the send may go (or, unreserved, would have gone)


class SendLimiter(Protocol):
    async def reserve(self, chat: ChatKey, *, cost: int, max_wait: float | None) -> Slot:
        """Take `cost` sends (0: none, only wait out pauses) for `chat` and the whole bot at the earliest
        moment both allow; unless that is more than `max_wait` seconds away."""
        ...

    async def pause(self, chat: ChatKey, seconds: float) -> None:
        """Telegram said 429: nothing goes to `chat` (None: to any chat) for `seconds`."""
        ...


class LocalSendLimiter:
    """This process's limiter; every method runs without an await, so it is atomic on the event loop."""

    _FORGET_AT = 50_000  # chats remembered before idle ones are dropped

    def __init__(self, rates: SendRates = SendRates(), clock: Callable[[], float] = time.monotonic) -> None:
        self.rates = rates
        self.clock = clock
        self._tat: dict[ChatKey, float] = {}
        self._paused: dict[ChatKey, float] = {}
        self._global_tat = 0.0
        self._global_paused = 0.0

    async def reserve(self, chat: ChatKey, *, cost: int, max_wait: float | None) -> Slot:
        return self.reserve_now(chat, cost=cost, max_wait=max_wait)

    def reserve_now(self, chat: ChatKey, *, cost: int, max_wait: float | None) -> Slot:
        now = self.clock()
        at = max(now, self._global_paused, self._paused.get(chat, 0.0) if chat is not None else 0.0)
        chat_step, chat_tol = self.rates.chat_interval(chat)
        all_step, all_tol = self.rates.global_interval
        chat_tat = self._tat.get(chat, 0.0)
        if cost > 0:
            at = max(at, self._global_tat - all_tol, chat_tat - chat_tol if chat is not None else 0.0)
        wait = at - now
        if max_wait is not None and wait > max_wait:
            return Slot(False, wait)
        if cost > 0:
            self._global_tat = max(self._global_tat, at) + cost * all_step
            if chat is not None:
                self._tat[chat] = max(chat_tat, at) + cost * chat_step
                if len(self._tat) > self._FORGET_AT:
                    self._forget(now)
        return Slot(True, wait)

    async def pause(self, chat: ChatKey, seconds: float) -> None:
        until = self.clock() + seconds
        if chat is None:
            self._global_paused = max(self._global_paused, until)
        else:
            self._paused[chat] = max(self._paused.get(chat, 0.0), until)

    def _forget(self, now: float) -> None:
        for chat in [c for c, tat in self._tat.items() if tat < now]:
            del self._tat[chat]
        for chat in [c for c, until in self._paused.items() if until < now]:
            del self._paused[chat]


# KEYS: chat TAT, bot TAT, chat pause, bot pause. ARGV: has_chat, cost, chat interval ms, chat tolerance
# ms, bot interval ms, bot tolerance ms, max wait ms (-1: any). Returns {reserved 0/1, wait ms}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local has_chat, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local chat_step, chat_tol = tonumber(ARGV[3]), tonumber(ARGV[4])
local all_step, all_tol = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_wait = tonumber(ARGV[7])
local function num(key) return tonumber(redis.call('GET', key) or '0') end
local at = math.max(now, num(KEYS[4]))
if has_chat == 1 then at = math.max(at, num(KEYS[3])) end
local all_tat, chat_tat = num(KEYS[2]), 0
if cost > 0 then
  at = math.max(at, all_tat - all_tol)
  if has_chat == 1 then
    chat_tat = num(KEYS[1])
    at = math.max(at, chat_tat - chat_tol)
  end
end
local wait = at - now
if max_wait >= 0 and wait > max_wait then return {0, math.ceil(wait)} end
if cost > 0 then
  all_tat = math.max(all_tat, at) + cost * all_step
  redis.call('SET', KEYS[2], string.format('%.3f', all_tat), 'PX', math.ceil(all_tat - now) + 1000)
  if has_chat == 1 then
    chat_tat = math.max(chat_tat, at) + cost * chat_step
    redis.call('SET', KEYS[1], string.format('%.3f', chat_tat), 'PX', math.ceil(chat_tat - now) + 1000)
  end
end
return {1, math.ceil(wait)}
"""

# KEYS: the pause key. ARGV: ms. Extends the pause to now + ms, never shortens it.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ms = tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if now + ms > cur then
  redis.call('SET', KEYS[1], string.format('%.0f', now + ms), 'PX', ms)
end
return 1
"""


class RedisSendLimiter:
    """The limiter every process shares, under `prefix` in Redis."""

    def __init__(self, redis: Redis, prefix: str, rates: SendRates = SendRates()) -> None:
        self.redis = redis
        self.prefix = prefix
        self.rates = rates
        self.local = LocalSendLimiter(rates)  # answers while Redis does not
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)
        self._degraded = Degraded("send limiter")

    def _keys(self, chat: ChatKey) -> list[str]:
        name = "-" if chat is None else str(chat)
        return [f"{self.prefix}send:tat:{name}", f"{self.prefix}send:tat", f"{self.prefix}send:pause:{name}",
                f"{self.prefix}send:pause"]

    async def reserve(self, chat: ChatKey, *, cost: int, max_wait: float | None) -> Slot:
        chat_step, chat_tol = self.rates.chat_interval(chat)
        all_step, all_tol = self.rates.global_interval
        args = [1 if chat is not None else 0, cost, chat_step * 1000, chat_tol * 1000, all_step * 1000,
                all_tol * 1000, -1 if max_wait is None else max_wait * 1000]
        try:
            reserved, wait_ms = await uncancellable(self._reserve(keys=self._keys(chat), args=args))
        except redis_errors() as exc:
            self._degraded.warn(exc)
            return await self.local.reserve(chat, cost=cost, max_wait=max_wait)
        return Slot(bool(reserved), max(0, int(wait_ms)) / 1000)

    async def pause(self, chat: ChatKey, seconds: float) -> None:
        await self.local.pause(chat, seconds)  # this process honours it even if Redis is gone
        key = self._keys(chat)[3 if chat is None else 2]
        try:
            await uncancellable(self._pause(keys=[key], args=[max(1, math.ceil(seconds * 1000))]))
        except redis_errors() as exc:
            self._degraded.warn(exc)


# Methods that put a message in a chat or change one: each counts toward the chat's and the bot's limits.
COUNTED = frozenset({
    "sendMessage", "sendPhoto", "sendVideo", "sendAudio", "sendVoice", "sendDocument", "sendAnimation",
    "sendSticker", "sendVideoNote", "sendMediaGroup", "sendLocation", "sendVenue", "sendContact", "sendPoll",
    "sendDice", "sendInvoice", "sendPaidMedia", "sendGame", "sendChecklist", "copyMessage", "copyMessages",
    "forwardMessage", "forwardMessages", "editMessageText", "editMessageCaption", "editMessageMedia",
    "editMessageReplyMarkup", "editMessageLiveLocation", "stopMessageLiveLocation", "stopPoll",
})
# Everything else with a chat_id (sendChatAction, deleteMessage, ...) costs nothing but waits out a pause;
# a method with neither (getUpdates, getMe, getFile, setMyCommands, answerCallbackQuery) passes untouched.


def _cost(method: TelegramMethod[Any]) -> int:
    name = method.__api_method__
    if name not in COUNTED:
        return 0
    if name == "sendMediaGroup":  # an album is that many messages
        return max(1, len(getattr(method, "media", ()) or ()))
    return 1


class SendLimitMiddleware(BaseRequestMiddleware):
    """Holds each send until the limiter gives it a slot; on a 429 tells the limiter (so every process
    pauses that chat, or the whole bot) and sends again, within the caller's `Patience`."""

    def __init__(self, limiter: SendLimiter) -> None:
        self.limiter = limiter

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        chat: ChatKey = getattr(method, "chat_id", None)
        cost = _cost(method)
        if cost == 0 and chat is None:
            return await make_request(bot, method)
        policy = current_patience()
        attempt = 0
        while True:
            attempt += 1
            slot = await self.limiter.reserve(chat, cost=cost, max_wait=policy.max_wait_s)
            if not slot.reserved:  # the caller would rather not wait that long: as if Telegram had said so
                raise mark_gave_up(TelegramRetryAfter(method, "held by the send limiter",
                                                      max(1, math.ceil(slot.wait))))
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                await self.limiter.pause(chat, float(exc.retry_after))
                if attempt >= policy.attempts or (policy.max_wait_s is not None
                                                  and exc.retry_after > policy.max_wait_s):
                    mark_gave_up(exc)
                    raise
                logger.info("telegram asks to wait {}s before {} ({}); waiting", exc.retry_after,
                            method.__api_method__, "the whole bot" if chat is None else "this chat")
