"""Single flight, the result cache, daily budgets, strategies, circuit and alerts through the manager."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.config import ManagerSettings, Prices
from providers.errors import AllProvidersFailed, ErrorKind
from providers.health import Alert, CircuitState
from providers.manager import ProviderManager
from providers.result import Result
from providers.types import AdapterResult, Category, GenerationRequest, Usage
from tests.fakes.scripted import FakeClock, ScriptedAdapter, failure, scripted_config
from tests.test_manager import UNUSED_CLIENT, Recorder, adapter, make_manager


@given(st.integers(2, 12))
@settings(max_examples=15, deadline=None)
def test_single_flight_makes_one_call_for_n_identical_requests(n: int) -> None:
    asyncio.run(_single_flight(n))


async def _single_flight(n: int) -> None:
    async with make_manager(["a"]) as manager:
        gate = adapter(manager, "a").gate = asyncio.Event()
        recorders = [Recorder() for _ in range(n)]
        # Same category, route and input; whitespace differences normalise away.
        tasks = [asyncio.create_task(manager.generate(GenerationRequest(Category.TEXT, prompt="hi  there" if i else
                                                                        "hi there"), hooks=r.hooks()))
                 for i, r in enumerate(recorders)]
        await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.gather(*tasks)
        assert len(adapter(manager, "a").calls) == 1
        leaders = [r for r in results if not r.cached]
        assert len(leaders) == 1 and leaders[0].cost_micros > 0 and len(leaders[0].attempts) == 1
        followers = [r for r in results if r.cached]
        assert all(f.shared and f.cost_micros == 0 and f.attempts == [] and f.text == leaders[0].text
                   for f in followers)
        # The attempt is recorded once (by the leader's hooks); every request gets its own result.
        assert sum(len(r.attempts) for r in recorders) == 1
        assert all(len(r.results) == 1 for r in recorders)


async def test_different_requests_or_routes_do_not_share() -> None:
    async with make_manager(["a", "b"]) as manager:
        gate = adapter(manager, "a").gate = asyncio.Event()
        adapter(manager, "b").gate = gate
        tasks = [asyncio.create_task(manager.generate(req, route=route)) for req, route in (
            (GenerationRequest(Category.TEXT, prompt="one"), None),
            (GenerationRequest(Category.TEXT, prompt="two"), None),
            (GenerationRequest(Category.TEXT, prompt="one"), ["b"]),
            (GenerationRequest(Category.IMAGE, prompt="one"), None),
        )]
        await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.gather(*tasks)
        assert not any(r.cached for r in results)
        assert len(adapter(manager, "a").calls) == 3 and len(adapter(manager, "b").calls) == 1


async def test_followers_of_a_failed_flight_get_the_failure_and_of_a_cancelled_leader_carry_on() -> None:
    async with make_manager(["a"]) as manager:
        gate = adapter(manager, "a").gate = asyncio.Event()
        adapter(manager, "a").script.append(failure(ErrorKind.BAD_REQUEST, status=400))
        request = GenerationRequest(Category.TEXT, prompt="x")
        tasks = [asyncio.create_task(manager.generate(request)) for _ in range(3)]
        await asyncio.sleep(0.01)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, AllProvidersFailed) and o.kind is ErrorKind.BAD_REQUEST for o in outcomes)
        assert len({id(o) for o in outcomes}) == 3 and len(adapter(manager, "a").calls) == 1

        gate.clear()
        leader = asyncio.create_task(manager.generate(request))
        await asyncio.sleep(0.01)
        follower = asyncio.create_task(manager.generate(request))
        await asyncio.sleep(0.01)
        leader.cancel()
        await asyncio.sleep(0.01)
        gate.set()
        result = await follower
        assert not result.cached and len(adapter(manager, "a").calls) == 3


async def test_cache_only_where_enabled_and_only_until_its_ttl() -> None:
    clock = FakeClock()
    custom = ManagerSettings(quick_retry_delay_s=0.0, cache_ttl_s={Category.AUDIO: 60.0})
    async with make_manager(["a"], clock, settings=custom) as manager:
        speech, chat = GenerationRequest(Category.AUDIO, prompt="say hi"), GenerationRequest(Category.TEXT, prompt="hi")
        first, second = await manager.generate(speech), await manager.generate(speech)
        assert not first.cached and second.cached and not second.shared and second.cost_micros == 0
        assert second.provider == first.provider and len(adapter(manager, "a").calls) == 1
        await manager.generate(chat)
        assert not (await manager.generate(chat)).cached and len(adapter(manager, "a").calls) == 3
        clock.advance(61)
        assert not (await manager.generate(speech)).cached and len(adapter(manager, "a").calls) == 4


async def test_over_daily_budget_is_skipped_until_the_next_utc_day() -> None:
    clock = FakeClock()
    async with make_manager(["a", "b"], clock, budgets={"a": 1000}) as manager:
        served = [(await manager.generate(GenerationRequest(Category.IMAGE, prompt=str(i)))).provider
                  for i in range(4)]
        assert served == ["a", "a", "b", "b"]  # 500 micro-USD per image: the budget holds two
        with pytest.raises(AllProvidersFailed) as caught:
            await manager.generate(GenerationRequest(Category.IMAGE, prompt="x"), route=["a"])
        assert "daily budget" in caught.value.skipped["a"] and caught.value.retry_at is not None
        assert caught.value.retry_at.hour == 0 and caught.value.retry_at.day == clock.now().day + 1
        clock.advance(12 * 3600)
        assert (await manager.generate(GenerationRequest(Category.IMAGE, prompt="y"))).provider == "a"


async def test_cheapest_strategy_orders_by_price_among_healthy() -> None:
    prices = {"a": Prices(image=900), "b": Prices(image=100), "c": Prices(image=500)}
    async with make_manager(["a", "b", "c"], prices=prices, strategy="cheapest") as manager:
        assert (await manager.generate(GenerationRequest(Category.IMAGE, prompt="1"))).provider == "b"
        adapter(manager, "b").script.append(failure(ErrorKind.QUOTA_EXHAUSTED, status=402))
        result = await manager.generate(GenerationRequest(Category.IMAGE, prompt="2"))
        assert [a.provider for a in result.attempts] == ["b", "c"]
        assert (await manager.generate(GenerationRequest(Category.IMAGE, prompt="3"))).provider == "c"


async def test_fastest_strategy_tries_untried_first_then_by_median_latency() -> None:
    async with make_manager(["a", "b", "c"], strategy="fastest") as manager:
        for name, ms in (("a", 300.0), ("b", 100.0)):
            for _ in range(3):
                manager.latency.add(name, Category.TEXT, ms)
        request = GenerationRequest(Category.TEXT, prompt="1")
        assert (await manager.generate(request)).provider == "c"  # no samples yet: measure it
        manager.latency.add("c", Category.TEXT, 200.0)  # its real sample was ~0 ms; make it middling
        for _ in range(3):
            manager.latency.add("c", Category.TEXT, 200.0)
        assert (await manager.generate(GenerationRequest(Category.TEXT, prompt="2"))).provider == "b"


async def test_circuit_through_the_manager_lets_one_trial_through() -> None:
    clock = FakeClock()
    custom = ManagerSettings(quick_retry_delay_s=0.0, circuit_failures=2, circuit_open_s=30, cache_ttl_s={})
    async with make_manager(["a", "b"], clock, settings=custom) as manager:
        primary = adapter(manager, "a")
        primary.script.extend([failure(ErrorKind.UNAVAILABLE, status=503)] * 2)
        for i in range(4):
            assert (await manager.generate(GenerationRequest(Category.TEXT, prompt=str(i)))).provider == "b"
        assert len(primary.calls) == 2  # open after two: not called again while open
        clock.advance(30)
        primary.gate = asyncio.Event()
        tasks = [asyncio.create_task(manager.generate(GenerationRequest(Category.TEXT, prompt=f"t{i}")))
                 for i in range(5)]
        await asyncio.sleep(0.01)
        assert len(primary.calls) == 3  # exactly one trial; the other four went to b
        primary.gate.set()
        results = await asyncio.gather(*tasks)
        assert sorted(r.provider for r in results) == ["a", "b", "b", "b", "b"]
        snapshot = {h.name: h for h in manager.health_snapshot()}
        assert snapshot["a"].categories[Category.TEXT].circuit is CircuitState.CLOSED


async def test_quota_alerts_once_and_never_hammers() -> None:
    alerts: list[Alert] = []

    async def on_alert(alert: Alert) -> None:
        alerts.append(alert)

    clock = FakeClock()
    config = scripted_config(["a", "b"], settings=ManagerSettings(quick_retry_delay_s=0.0, cache_ttl_s={}))
    async with ProviderManager(config, client=UNUSED_CLIENT, on_alert=on_alert, clock=clock,
                               registry={"scripted": ScriptedAdapter}) as manager:
        primary = adapter(manager, "a")
        primary.default = failure(ErrorKind.QUOTA_EXHAUSTED, status=402)
        for i in range(20):
            result: Result = await manager.generate(GenerationRequest(Category.TEXT, prompt=str(i)))
            assert result.provider == "b"
        await asyncio.sleep(0)
        assert len(primary.calls) == 1 and len(alerts) == 1 and alerts[0].provider == "a"
        assert alerts[0].kind is ErrorKind.QUOTA_EXHAUSTED
        snapshot = {h.name: h for h in manager.health_snapshot()}
        assert snapshot["a"].categories[Category.IMAGE].reason == "quota_exhausted"
        assert snapshot["a"].categories[Category.TEXT].cooldown_until == alerts[0].until
        clock.advance(3600)
        await manager.generate(GenerationRequest(Category.TEXT, prompt="later"))
    assert len(primary.calls) == 2 and len(alerts) == 2  # a new window, still broken: admins hear again


async def test_job_ids_reach_the_hooks_before_the_attempt_and_resume_never_creates() -> None:
    async with make_manager(["a"]) as manager:
        video = adapter(manager, "a")
        video.job_id = "job-42"
        video.script.append(AdapterResult(model="", media=(), usage=Usage(seconds=5)))
        seen = Recorder()
        result = await manager.generate(GenerationRequest(Category.VIDEO, prompt="a cat"), hooks=seen.hooks())
        assert result.job_id == "job-42" and seen.job_ids == [("a", "a-video", "job-42")]
        assert seen.events == ["job:job-42", "attempt:a", "result"]
        resumed = Recorder()
        again = await manager.resume("a", "job-42", GenerationRequest(Category.VIDEO, prompt="a cat"), "a-video",
                                     hooks=resumed.hooks())
        assert video.resumed == ["job-42"] and len(video.calls) == 1 and again.job_id == "job-42"
        assert [a.provider for a in resumed.attempts] == ["a"] and resumed.results == [again]
        video.script.append(failure(ErrorKind.UNAVAILABLE, status=200))
        with pytest.raises(AllProvidersFailed) as caught:
            await manager.resume("a", "job-43", GenerationRequest(Category.VIDEO, prompt="x"), "a-video")
        assert caught.value.attempts[0].job_id == "job-43" and len(video.calls) == 1
        with pytest.raises(AllProvidersFailed, match="cannot resume"):
            await manager.resume("gone", "job-1", GenerationRequest(Category.VIDEO, prompt="x"), "m")


@given(st.lists(st.integers(0, 5), min_size=2, max_size=5), st.data())
@settings(max_examples=60, deadline=None)
def test_cheapest_is_the_lowest_price_among_the_healthy(prices: list[int], data: st.DataObject) -> None:
    names = [f"p{i}" for i in range(len(prices))]
    dead = data.draw(st.sets(st.sampled_from(names), max_size=len(names) - 1))
    asyncio.run(_cheapest(names, prices, dead))


async def _cheapest(names: list[str], prices: list[int], dead: set[str]) -> None:
    table = {n: Prices(image=p * 100) for n, p in zip(names, prices, strict=True)}
    async with make_manager(names, prices=table, strategy="cheapest") as manager:
        for name in dead:  # parked by an earlier failure
            adapter(manager, name).script.append(failure(ErrorKind.AUTH, status=401))
            with pytest.raises(AllProvidersFailed):
                await manager.generate(GenerationRequest(Category.IMAGE, prompt="probe"), route=[name])
        result = await manager.generate(GenerationRequest(Category.IMAGE, prompt="x"))
        healthy = [n for n in names if n not in dead]
        assert result.provider == min(healthy, key=lambda n: (table[n].image, names.index(n)))
        assert len(result.attempts) == 1
