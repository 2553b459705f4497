"""Provider health and daily budgets shared across processes (providers.shared, providers.redis_state).

Two `ProviderManager`s in this process stand for two processes: each has its own books and its own
`RedisState` on the same real Redis (tests.services.redis_url) under a prefix unique to the test, and both
call the same loopback fake providers, which count the calls. Propagation is awaited by polling for the
state to appear, within a bound; nothing here asserts on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from providers.budget import DailySpend
from providers.config import ManagerSettings, ProvidersConfig
from providers.errors import ErrorKind
from providers.health import Alert, Block, DeadlineNote, HealthBook, Ticket
from providers.loader import load_providers
from providers.manager import ProviderManager
from providers.redis_state import RedisState, deadline_field, parse_deadline, safe_url
from providers.shared import LocalState, make_shared_state
from providers.types import Category, GenerationRequest
from tests.fakes.openai import FakeOpenAI, openai_error
from tests.fakes.scripted import FakeClock, failure
from tests.services import redis_url

T = Category.TEXT
WAIT_S = 10.0  # the bound on waiting for another "process" to learn something; normally milliseconds

# "a" as the prompt: 4 prompt tokens and 5 completion tokens at $1 per 1k each = $0.009 a call, so the
# $0.015 budget lets exactly one call through per process and stops both once two were made.
FILE = """
[providers.openai]
kind = "openai"
timeout_s = 2
models = { text = "gpt-4o-mini" }
prices = { text_in_per_1k = 1, text_out_per_1k = 1 }
daily_budget_usd = 0.015

[providers.groq]
kind = "groq"
timeout_s = 2
models = { text = "llama-3.1-8b-instant" }
prices = { text_in_per_1k = 0.001, text_out_per_1k = 0.002 }

[routes]
text = ["openai", "groq"]

[manager]
quick_retry_delay_s = 0
"""
CALL_MICROS = 9000


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Poll until `check()` holds; fail naming `what` if it does not within WAIT_S."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WAIT_S
    while not check():
        if loop.time() > give_up:
            pytest.fail(f"not within {WAIT_S:g} s: {what}")
        await asyncio.sleep(0.01)


def chat(prompt: str = "a") -> GenerationRequest:
    return GenerationRequest(T, prompt=prompt)


@pytest.fixture
def url() -> str:
    return redis_url()


@pytest.fixture
async def prefix(url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    from redis.asyncio import Redis

    mine = f"test:{uuid.uuid4().hex}:"
    yield mine
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{mine}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    async with FakeOpenAI("openai") as primary, FakeOpenAI("groq") as backup:
        yield primary, backup


@pytest.fixture
def config(tmp_path: Path, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> ProvidersConfig:
    path = tmp_path / "providers.toml"
    path.write_text(textwrap.dedent(FILE))
    primary, backup = fakes
    return load_providers(path, env={"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": primary.url,
                                     "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": backup.url})


@dataclass
class Process:
    """One manager as one process would run it, with the alerts it raised."""

    manager: ProviderManager
    alerts: list[Alert] = field(default_factory=list)

    @property
    def state(self) -> RedisState:
        assert isinstance(self.manager.shared, RedisState)
        return self.manager.shared

    def blocked(self, provider: str = "openai") -> Block | None:
        return self.manager.health.blocked(provider, T)


def process(config: ProvidersConfig, redis: str, prefix: str) -> Process:
    alerts: list[Alert] = []

    async def on_alert(alert: Alert) -> None:
        alerts.append(alert)

    return Process(ProviderManager(config, on_alert=on_alert, shared=RedisState(redis, prefix=prefix)), alerts)


@pytest.fixture
async def pair(config: ProvidersConfig, url: str, prefix: str) -> AsyncIterator[tuple[Process, Process]]:
    a, b = process(config, url, prefix), process(config, url, prefix)
    async with a.manager, b.manager:
        assert a.state.connected and b.state.connected
        yield a, b


# --- two managers, one Redis -----------------------------------------------------------------
async def test_a_429_seen_by_one_manager_keeps_the_other_away(
        pair: tuple[Process, Process], fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    primary, backup = fakes
    primary.fail_next(429, openai_error("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
                      headers={"retry-after": "120"})
    first = await a.manager.generate(chat())
    assert [(x.provider, x.kind) for x in first.attempts] == [("openai", ErrorKind.RATE_LIMITED), ("groq", None)]
    a_block = a.blocked()
    assert a_block is not None
    await eventually(lambda: b.blocked() is not None, "B learns A's cooldown")
    b_block = b.blocked()
    assert b_block is not None and b_block.cause == ErrorKind.RATE_LIMITED
    assert abs((b_block.until - a_block.until).total_seconds()) < 0.01  # the same deadline, not a fresh one
    second = await b.manager.generate(chat("b"))
    assert second.provider == "groq" and [x.provider for x in second.attempts] == ["groq"]
    assert len(primary.calls) == 1 and len(backup.calls) == 2  # the parked provider was called once, not twice


async def test_a_quota_parking_is_shared_and_alerted_by_one_process_only(
        pair: tuple[Process, Process], fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = pair
    primary, _ = fakes
    primary.fail_next(429, openai_error("You exceeded your current quota, please check your plan and billing "
                                        "details.", "insufficient_quota", "insufficient_quota"), times=5)
    assert (await a.manager.generate(chat())).provider == "groq"
    await eventually(lambda: b.blocked() is not None, "B learns A's quota parking")
    for category in (T, Category.IMAGE):  # the whole provider, not one category
        block = b.manager.health.blocked("openai", category)
        assert block is not None and block.cause == ErrorKind.QUOTA_EXHAUSTED
        assert (block.until - datetime.now(UTC)).total_seconds() > 3000  # the long cooldown (an hour)
    for prompt in "bcd":
        assert (await b.manager.generate(chat(prompt))).provider == "groq"
    assert len(primary.calls) == 1
    await a.manager.aclose()
    await b.manager.aclose()  # both wait for their alert tasks
    assert [(x.provider, x.kind) for x in a.alerts] == [("openai", ErrorKind.QUOTA_EXHAUSTED)]
    assert b.alerts == []


async def test_spend_adds_up_across_managers_and_stops_both_at_the_budget(
        pair: tuple[Process, Process], fakes: tuple[FakeOpenAI, FakeOpenAI], url: str) -> None:
    a, b = pair
    primary, backup = fakes
    assert (await a.manager.generate(chat())).provider == "openai"  # $0.009 of $0.015
    await eventually(lambda: b.manager.spend.spent("openai") == CALL_MICROS, "B learns A's spend")
    assert b.manager.spend.blocked("openai", 15_000) is None
    assert (await b.manager.generate(chat())).provider == "openai"  # $0.018 in all: over, for both
    await eventually(lambda: all(p.manager.spend.spent("openai") == 2 * CALL_MICROS for p in (a, b)),
                     "both know the day's total")
    for p in (a, b):
        assert (await p.manager.generate(chat())).provider == "groq"
    assert len(primary.calls) == 2 and len(backup.calls) == 2
    from redis.asyncio import Redis

    client = Redis.from_url(url, decode_responses=True)
    try:
        key = a.state.spend_key(a.manager.spend.today())
        assert await client.hget(key, "openai") == str(2 * CALL_MICROS)
        assert 0 < await client.ttl(key) <= 2 * 24 * 3600
    finally:
        await client.aclose()


async def test_a_manager_that_starts_later_loads_what_the_others_know(
        config: ProvidersConfig, url: str, prefix: str, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, _ = fakes
    a = process(config, url, prefix)
    async with a.manager:
        primary.fail_next(429, openai_error("Rate limit reached.", "requests", "rate_limit_exceeded"),
                          headers={"retry-after": "300"})
        await a.manager.generate(chat("x"))
        assert (await a.manager.generate(chat())).provider == "groq"
        await eventually(lambda: a.state.connected and not a.state._pending_spend and not a.state._pending_deadlines,
                         "A's changes are in Redis")
        late = process(config, url, prefix)
        async with late.manager:  # start() returns once it has loaded
            block = late.blocked()
            assert block is not None and block.cause == ErrorKind.RATE_LIMITED
            assert late.manager.spend.spent("openai") == 0  # the 429 cost nothing; groq's spend is its own
            assert late.manager.spend.spent("groq") == a.manager.spend.spent("groq") > 0
            assert (await late.manager.generate(chat("y"))).provider == "groq"
    assert len(primary.calls) == 1


# --- deadlines only grow, both ways ----------------------------------------------------------
def books() -> tuple[HealthBook, DailySpend]:
    return HealthBook(ManagerSettings()), DailySpend()


def rate_limited(health: HealthBook, seconds: float, category: Category = T) -> None:
    """A 429 with this Retry-After, answered to a call admitted earlier (so even while cooling down)."""
    ticket = Ticket("p", category, health.clock.monotonic(), trial=False)
    health.failure(ticket, failure(ErrorKind.RATE_LIMITED, retry_after_s=seconds))


def same(x: datetime, y: datetime) -> bool:
    """The same deadline (epoch seconds through a float may move it by a microsecond)."""
    return abs((x - y).total_seconds()) < 1e-3


def until(health: HealthBook, category: Category = T) -> datetime:
    block = health.blocked("p", category)
    assert block is not None
    return block.until


async def test_deadlines_only_grow_across_processes(url: str, prefix: str) -> None:
    (a_health, a_spend), (b_health, b_spend) = books(), books()
    a, b = RedisState(url, prefix=prefix), RedisState(url, prefix=prefix)
    a.bind(a_health, a_spend)
    b.bind(b_health, b_spend)
    try:
        await a.start()
        rate_limited(a_health, 300)
        a_until = until(a_health)
        rate_limited(b_health, 30)  # B, not yet following, has a shorter one of its own
        await b.start()  # B loads A's later deadline; its own shorter one changes nothing anywhere
        await eventually(lambda: not b._pending_deadlines, "B has offered its deadline")
        assert same(until(b_health), a_until) and until(a_health) == a_until
        stored = await a._redis.hget(a.health_key, "p|text|cooldown")
        assert stored is not None and float(str(stored).split()[0]) == pytest.approx(a_until.timestamp(), abs=1e-3)

        rate_limited(b_health, 10)  # shorter again, now while following: ignored locally and remotely
        assert same(until(b_health), a_until)
        rate_limited(b_health, 900)  # longer: everyone moves to it
        b_until = until(b_health)
        assert b_until > a_until
        await eventually(lambda: same(until(a_health), b_until), "A extends to B's later deadline")

        # A remote deadline that is shorter than the local one never shortens it.
        assert not a_health.apply_remote(DeadlineNote("p", T, "cooldown", a_until.timestamp(), ErrorKind.RATE_LIMITED))
        assert same(until(a_health), b_until)
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_circuit_opened_in_one_process_is_open_in_the_other(url: str, prefix: str) -> None:
    (a_health, a_spend), (b_health, b_spend) = books(), books()
    a, b = RedisState(url, prefix=prefix), RedisState(url, prefix=prefix)
    a.bind(a_health, a_spend)
    b.bind(b_health, b_spend)
    try:
        await a.start()
        await b.start()
        for _ in range(a_health.settings.circuit_failures):
            ticket = a_health.admit("p", T)
            assert isinstance(ticket, Ticket)
            a_health.failure(ticket, failure(ErrorKind.UNAVAILABLE, status=503))
        assert a_health.category_health("p", T).circuit == "open"
        await eventually(lambda: b_health.category_health("p", T).circuit == "open", "B's circuit opens too")
        block = b_health.blocked("p", T)
        assert block is not None and block.cause == "circuit_open"
        assert b_health.blocked("p", Category.IMAGE) is None  # one category's circuit
    finally:
        await a.aclose()
        await b.aclose()


# --- Redis unreachable -------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nobody listens there now


async def test_with_redis_down_both_managers_serve_on_their_own_state(
        config: ProvidersConfig, fakes: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    primary, _ = fakes
    password = "s3cret-redis-passw0rd"
    down = f"redis://:{password}@127.0.0.1:{closed_port()}/0"
    logged: list[str] = []
    sink = logger.add(lambda message: logged.append(str(message)), level="DEBUG")
    try:
        a, b = process(config, down, "down:"), process(config, down, "down:")
        async with a.manager, b.manager:  # start() returns after the first failed attempt, without raising
            assert not a.state.connected and not b.state.connected
            primary.fail_next(429, openai_error("Rate limit reached.", "requests", "rate_limit_exceeded"),
                              headers={"retry-after": "120"})
            assert (await a.manager.generate(chat())).provider == "groq"
            assert a.blocked() is not None
            result = await b.manager.generate(chat())  # B cannot know: it calls the provider itself
            assert result.provider == "openai" and b.manager.spend.spent("openai") == CALL_MICROS
            await eventually(lambda: any("cannot write to" in line for line in logged), "the writer's failure logged")
        assert len(primary.calls) == 2
    finally:
        logger.remove(sink)
    assert any("shared provider state" in line and "WARNING" in line for line in logged)
    assert not any(password in line for line in logged)


class CuttableProxy:
    """A loopback TCP relay to Redis that the test can cut (every connection dropped, nobody listening)
    and restore on the same port: a Redis outage for one process only."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_process_cut_off_from_redis_catches_up_when_it_is_back(url: str, prefix: str) -> None:
    from urllib.parse import urlsplit

    target = urlsplit(url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    (a_health, a_spend), (b_health, b_spend) = books(), books()
    a = RedisState(url, prefix=prefix)
    b = RedisState(urlsplit(url)._replace(netloc=f"127.0.0.1:{proxy.port}").geturl(), prefix=prefix,
                   retry_s=0.05, max_retry_s=0.2)
    a.bind(a_health, a_spend)
    b.bind(b_health, b_spend)
    try:
        await a.start()
        await b.start()
        assert a.connected and b.connected
        await proxy.cut()
        await eventually(lambda: not b.connected, "B notices it lost Redis")
        rate_limited(a_health, 300)  # published while B cannot hear it
        b_spend.add("p", 700)  # spent while B cannot tell anyone
        ticket = Ticket("p", Category.IMAGE, b_health.clock.monotonic(), trial=False)
        b_health.failure(ticket, failure(ErrorKind.RATE_LIMITED, retry_after_s=600))
        assert b_health.blocked("p", T) is None and b._pending_spend and b._pending_deadlines
        await proxy.start()  # back on the same port
        await eventually(lambda: b.connected, "B reconnects")
        await eventually(lambda: b_health.blocked("p", T) is not None, "B loads what it missed")
        assert same(until(b_health), until(a_health))
        await eventually(lambda: a_spend.spent("p") == 700, "A learns what B spent meanwhile")
        await eventually(lambda: a_health.blocked("p", Category.IMAGE) is not None, "A learns B's deadline")
        assert same(until(a_health, Category.IMAGE), until(b_health, Category.IMAGE))
    finally:
        await a.aclose()
        await b.aclose()
        with contextlib.suppress(Exception):
            await proxy.cut()


# --- no Redis at all ---------------------------------------------------------------------------
def test_the_default_shares_nothing_and_installs_no_hook(config: ProvidersConfig) -> None:
    manager = ProviderManager(config)
    assert isinstance(manager.shared, LocalState)
    assert manager.health.on_deadline is None and manager.spend.on_add is None
    assert isinstance(make_shared_state(None), LocalState) and isinstance(make_shared_state(""), LocalState)
    state = make_shared_state("redis://:pw-1234567@127.0.0.1:6379/3", prefix="x:")
    assert isinstance(state, RedisState) and state.prefix == "x:" and "pw-1234567" not in state.url


def test_notes_survive_their_round_trip_through_redis_fields() -> None:
    for note in (DeadlineNote("openai", T, "cooldown", 1762000000.125, ErrorKind.RATE_LIMITED),
                 DeadlineNote("a|b", Category.IMAGE_EDIT, "circuit", 1762000000.0, ErrorKind.UNAVAILABLE),
                 DeadlineNote("openai", None, "cooldown", 1762000000.5, ErrorKind.AUTH)):
        assert parse_deadline(deadline_field(note), f"{note.until:.3f} {note.reason.value}") == note
    assert parse_deadline("openai|text|cooldown", "soon rate_limited") is None
    assert parse_deadline("openai|*|circuit", "1 unavailable") is None
    assert parse_deadline("openai|text|cooldown", "1 a_kind_from_the_future") is None
    assert safe_url("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert safe_url("redis://host/0") == "redis://host/0"


def test_apply_remote_only_extends_and_converts_epoch_to_the_local_clock() -> None:
    clock = FakeClock()
    health = HealthBook(ManagerSettings(), clock)
    heard: list[Any] = []
    health.on_deadline = heard.append
    epoch = clock.now().timestamp()
    assert not health.apply_remote(DeadlineNote("p", T, "cooldown", epoch - 1, ErrorKind.RATE_LIMITED))  # past
    assert health.apply_remote(DeadlineNote("p", T, "cooldown", epoch + 60, ErrorKind.RATE_LIMITED))
    assert heard == []  # a remote deadline is never announced again
    clock.advance(59.9)
    assert health.blocked("p", T) is not None
    clock.advance(0.2)
    assert health.blocked("p", T) is None
    rate_limited(health, 100)
    assert len(heard) == 1 and heard[0].until == pytest.approx(clock.now().timestamp() + 100)
    assert not health.apply_remote(DeadlineNote("p", T, "cooldown", clock.now().timestamp() + 50,
                                                ErrorKind.RATE_LIMITED))
    assert until(health) == datetime.fromtimestamp(heard[0].until, UTC)
    # A remote parking covers every category, and opens an incident here: a call of ours already under way
    # that fails the same way alerts nobody again (the other process did).
    in_flight = health.admit("p", Category.VIDEO)
    assert isinstance(in_flight, Ticket)
    assert health.apply_remote(DeadlineNote("p", None, "cooldown", clock.now().timestamp() + 3600,
                                            ErrorKind.QUOTA_EXHAUSTED))
    block = health.blocked("p", Category.VIDEO)
    assert block is not None and block.cause == ErrorKind.QUOTA_EXHAUSTED
    clock.advance(1)
    assert health.failure(in_flight, failure(ErrorKind.QUOTA_EXHAUSTED)) is None
    assert len(heard) == 2 and heard[1].category is None  # our own failure still extends the parking, and says so


def test_observe_only_raises_todays_figure() -> None:
    clock = FakeClock()
    spend = DailySpend(clock)
    told: list[tuple[str, Any, int]] = []
    spend.on_add = lambda provider, day, micros: told.append((provider, day, micros))
    spend.add("p", 500)
    assert told == [("p", clock.now().date(), 500)]
    spend.observe("p", clock.now().date(), 300)  # behind what this process already spent
    assert spend.spent("p") == 500
    spend.observe("p", clock.now().date(), 2000)
    assert spend.spent("p") == 2000
    spend.observe("p", clock.now().date() - timedelta(days=1), 9_999_999)  # yesterday's total is not today's
    assert spend.spent("p") == 2000
