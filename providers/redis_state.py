"""`RedisState`: the `providers.shared.SharedState` of processes that share one Redis.

Keys, all under `prefix` (default "aibot:"):
- `{prefix}health`, a hash: field "provider|category|scope" (category "*": the whole provider), value
  "until reason" (until: UTC epoch seconds). Written only by `_DEADLINE_LUA`, which keeps the later of the
  stored and the offered deadline in one atomic step (two processes racing never lower it), publishes a
  change, and answers with the stored deadline when that one was later. The hash expires an hour after its
  latest deadline.
- `{prefix}spend:YYYY-MM-DD`, a hash: provider -> micro-USD spent that UTC day by every process, grown by
  `HINCRBY` in `_SPEND_LUA`, which publishes the new total; it expires two days after its last write.
- `{prefix}events`, the channel: JSON `{"t": "d", "o": origin, "f": field, "u": until, "r": reason}` or
  `{"t": "s", "o": origin, "d": day, "p": provider, "v": total}`; a process skips its own (`o`).

Two background tasks. The listener subscribes, then loads both hashes (so nothing published between the
two is missed), then applies each message to the local books; it loads again every `refresh_s` and after
every reconnect, and on each (re)connect offers the local deadlines again (a Redis that restarted empty
learns them back). The writer sends what the books announced, coalesced: the latest deadline per field,
the sum per provider and day; while Redis is unreachable it keeps them and retries with a growing pause.
Nothing here is awaited by a request: the books decide locally, and a Redis failure is only logged (without
the URL's password) while the process carries on with what it knows.

Limits: deadlines travel as UTC epoch seconds, so the hosts' clocks must agree (NTP); a skew of s seconds
moves a remote deadline by s. A spend increment whose answer is lost (a timeout after Redis applied it) is
sent again, counting it twice: the brake errs towards stopping early, never towards overspending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from loguru import logger

from providers.budget import DailySpend
from providers.errors import ErrorKind
from providers.health import DeadlineNote, HealthBook
from providers.redact import redact
from providers.shared import DEFAULT_PREFIX
from providers.types import Category

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

SPEND_TTL_S = 2 * 24 * 3600
_WHOLE = "*"

# KEYS[1] health hash; ARGV: field, until, reason, origin, now (epoch s), channel.
_DEADLINE_LUA = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local old_until = tonumber(string.match(old, '^(%S+)'))
  if old_until ~= nil and old_until >= tonumber(ARGV[2]) then
    return old
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
local ttl = math.ceil(tonumber(ARGV[2]) - tonumber(ARGV[5])) + 3600
if ttl < 3600 then ttl = 3600 end
if redis.call('TTL', KEYS[1]) < ttl then
  redis.call('EXPIRE', KEYS[1], ttl)
end
redis.call('PUBLISH', ARGV[6], cjson.encode({t = 'd', o = ARGV[4], f = ARGV[1], u = ARGV[2], r = ARGV[3]}))
return false
"""

# KEYS[1] the day's spend hash; ARGV: provider, micros, origin, day, ttl, channel.
_SPEND_LUA = """
local total = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('PUBLISH', ARGV[6], cjson.encode({t = 's', o = ARGV[3], d = ARGV[4], p = ARGV[1], v = tostring(total)}))
return total
"""


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def deadline_field(note: DeadlineNote) -> str:
    category = _WHOLE if note.category is None else note.category.value
    return f"{note.provider}|{category}|{note.scope}"


def parse_deadline(field: str, value: str) -> DeadlineNote | None:
    """A stored or announced deadline; None for anything this version does not understand."""
    try:
        provider, category, scope = field.rsplit("|", 2)
        until, reason = value.split(" ", 1)
        if scope not in ("cooldown", "circuit") or (category == _WHOLE and scope != "cooldown"):
            return None
        return DeadlineNote(provider, None if category == _WHOLE else Category(category),
                            "cooldown" if scope == "cooldown" else "circuit", float(until), ErrorKind(reason))
    except ValueError:
        return None


class RedisState:
    """Shares one manager's health deadlines and daily spend through Redis (see the module docstring).

    `connected`: the listener is subscribed and has loaded the shared state (for a health view)."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, connect_timeout_s: float = 2.0,
                 command_timeout_s: float = 5.0, refresh_s: float = 60.0, retry_s: float = 0.5,
                 max_retry_s: float = 10.0, close_timeout_s: float = 3.0) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.prefix = prefix
        self.url = safe_url(url)
        self._secrets = [urlsplit(url).password]
        self.refresh_s, self.retry_s, self.max_retry_s = refresh_s, retry_s, max_retry_s
        self.close_timeout_s = close_timeout_s
        self._start_timeout_s = connect_timeout_s + 2 * command_timeout_s
        self.origin = uuid.uuid4().hex
        self.health_key = f"{prefix}health"
        self.channel = f"{prefix}events"
        self.connected = False
        # No client-side retries: the loops below retry at their own pace, and a start never hangs on them.
        self._redis: Redis = Redis.from_url(url, decode_responses=True, socket_connect_timeout=connect_timeout_s,
                                            socket_timeout=command_timeout_s, retry=Retry(NoBackoff(), 0),
                                            health_check_interval=15)
        self._deadline_script: AsyncScript = self._redis.register_script(_DEADLINE_LUA)
        self._spend_script: AsyncScript = self._redis.register_script(_SPEND_LUA)
        self._health: HealthBook | None = None
        self._spend: DailySpend | None = None
        self._pending_deadlines: dict[str, DeadlineNote] = {}
        self._pending_spend: dict[tuple[date, str], int] = {}
        self._wake = asyncio.Event()
        self._reconnected = asyncio.Event()  # cuts the writer's pause short
        self._stop = asyncio.Event()  # set by aclose: cuts the listener's pause short
        self._tried = asyncio.Event()  # the listener's first attempt to connect is over, either way
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._down = False  # an outage was logged; the next success says so

    def spend_key(self, day: date) -> str:
        return f"{self.prefix}spend:{day.isoformat()}"

    # --- SharedState -------------------------------------------------------------------------
    def bind(self, health: HealthBook, spend: DailySpend) -> None:
        if self._health is not None:
            raise RuntimeError("a RedisState serves one manager")
        self._health, self._spend = health, spend
        health.on_deadline = self._note_deadline
        spend.on_add = self._note_spend

    async def start(self) -> None:
        """Start following Redis; returns once the first load is done or the first attempt failed (or, at
        worst, after the connect and command timeouts)."""
        if self._tasks or self._closed:
            return
        if self._health is None:
            raise RuntimeError("bind the books first (ProviderManager(..., shared=...) does)")
        self._tasks = [asyncio.create_task(self._listen(), name="redis-state-listen"),
                       asyncio.create_task(self._write(), name="redis-state-write")]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._start_timeout_s):
                await self._tried.wait()

    async def aclose(self) -> None:
        """Stop both tasks: the writer sends what is pending first, if Redis answers within
        `close_timeout_s`. Ends them by flags, not only by cancelling: redis-py may swallow a cancellation
        that lands while a command is in flight."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._reconnected.set()
        self._stop.set()
        if self._tasks:
            self._tasks[0].cancel()  # the listener has nothing to finish (the flag ends it if this is swallowed)
            _, late = await asyncio.wait(self._tasks, timeout=self.close_timeout_s)
            for task in late:
                task.cancel()
            if late:
                logger.warning("shared provider state: {} did not stop within {:g} s; what it had not sent is "
                               "lost", ", ".join(t.get_name() for t in late), self.close_timeout_s)
        self.connected = False
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # --- local changes, told synchronously by the books ------------------------------------
    def _note_deadline(self, note: DeadlineNote) -> None:
        if self._closed:
            return
        field = deadline_field(note)
        pending = self._pending_deadlines.get(field)
        if pending is None or note.until > pending.until:
            self._pending_deadlines[field] = note
            self._wake.set()

    def _note_spend(self, provider: str, day: date, micros: int) -> None:
        if self._closed:
            return
        key = (day, provider)
        self._pending_spend[key] = self._pending_spend.get(key, 0) + micros
        self._wake.set()

    # --- the writer --------------------------------------------------------------------------
    async def _write(self) -> None:
        pause = self.retry_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except Exception as exc:  # kept for the next try; a request never sees this
                self._log_failure("cannot write to", exc)
                if self._closed:
                    return
                self._reconnected.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._reconnected.wait()
                pause = min(pause * 2, self.max_retry_s)
                self._wake.set()
            else:
                pause = self.retry_s
            if self._closed and not (self._pending_deadlines or self._pending_spend):
                return

    async def _flush(self) -> None:
        health, spend = self._books()
        while self._pending_deadlines:
            field, note = next(iter(self._pending_deadlines.items()))
            now = health.clock.now().timestamp()
            if note.until > now:
                stored = await self._deadline_script(keys=[self.health_key], args=[
                    field, repr(note.until), note.reason.value, self.origin, repr(now), self.channel])
                if stored is not None and (later := parse_deadline(field, str(stored))) is not None:
                    health.apply_remote(later)  # another process had set a later one
            if self._pending_deadlines.get(field) is note:  # a later one may have come meanwhile
                del self._pending_deadlines[field]
        while self._pending_spend:
            key, micros = next(iter(self._pending_spend.items()))
            day, provider = key
            total = await self._spend_script(keys=[self.spend_key(day)], args=[
                provider, micros, self.origin, day.isoformat(), SPEND_TTL_S, self.channel])
            left = self._pending_spend.get(key, 0) - micros  # more may have been spent meanwhile
            if left > 0:
                self._pending_spend[key] = left
            else:
                self._pending_spend.pop(key, None)
            spend.observe(provider, day, int(total))

    # --- the listener ------------------------------------------------------------------------
    async def _listen(self) -> None:
        pause = self.retry_s
        while not self._closed:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._load()
                self._up()
                pause = self.retry_s
                loaded = time.monotonic()
                while not self._closed:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._apply_message(message["data"])
                    if time.monotonic() - loaded >= self.refresh_s:
                        await self._load()
                        loaded = time.monotonic()
            except Exception as exc:  # unreachable, dropped, timed out: local state serves meanwhile
                self.connected = False
                self._log_failure("cannot follow", exc)
                self._tried.set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._stop.wait()
                pause = min(pause * 2, self.max_retry_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _load(self) -> None:
        health, spend = self._books()
        for field, value in (await self._redis.hgetall(self.health_key)).items():
            note = parse_deadline(str(field), str(value))
            if note is not None:
                health.apply_remote(note)
        day = spend.today()
        for provider, total in (await self._redis.hgetall(self.spend_key(day))).items():
            with contextlib.suppress(ValueError):
                spend.observe(str(provider), day, int(total))

    def _up(self) -> None:
        health, _ = self._books()
        if self._down:
            logger.info("shared provider state: {} is reachable again", self.url)
            self._down = False
        self.connected = True
        self._tried.set()
        self._reconnected.set()
        for note in health.deadlines():  # a Redis that lost them (a restart) learns them back
            self._note_deadline(note)

    def _apply_message(self, data: Any) -> None:
        health, spend = self._books()
        try:
            message = json.loads(data)
            if message.get("o") == self.origin:
                return
            if message["t"] == "d":
                note = parse_deadline(str(message["f"]), f"{message['u']} {message['r']}")
                if note is not None:
                    health.apply_remote(note)
            elif message["t"] == "s":
                spend.observe(str(message["p"]), date.fromisoformat(message["d"]), int(message["v"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("shared provider state: ignored a malformed message on {}", self.channel)

    # --- helpers -----------------------------------------------------------------------------
    def _books(self) -> tuple[HealthBook, DailySpend]:
        assert self._health is not None and self._spend is not None
        return self._health, self._spend

    def _log_failure(self, what: str, exc: BaseException) -> None:
        text = redact(f"{type(exc).__name__}: {exc}", self._secrets)
        if self._down:  # once per outage at WARNING; the retries quietly
            logger.debug("shared provider state: {} {}: {}", what, self.url, text)
            return
        self._down = True
        logger.warning("shared provider state: {} {} ({}); serving on this process's own state until it is back",
                       what, self.url, text)
