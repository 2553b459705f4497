"""The manager's fallback rules, as hypothesis properties over an in-process scripted adapter."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.config import LabelConfig, ManagerSettings
from providers.errors import AllProvidersFailed, Attempt, ErrorKind
from providers.manager import ProviderManager
from providers.result import CallHooks, Result
from providers.types import AdapterResult, Category, GenerationRequest, Usage
from tests.fakes.scripted import FakeClock, ScriptedAdapter, Step, failure, scripted_config

OUTCOMES = st.sampled_from(["ok", *ErrorKind])
FAST = ManagerSettings(quick_retry_delay_s=0.0, circuit_failures=99, cache_ttl_s={})
# Scripted adapters never touch the network; one client for all (building one loads the CA bundle: slow).
UNUSED_CLIENT = httpx.AsyncClient()


def make_manager(names: list[str], clock: FakeClock | None = None, **kw: Any) -> ProviderManager:
    kw.setdefault("settings", FAST)
    return ProviderManager(scripted_config(names, **kw), client=UNUSED_CLIENT, clock=clock or FakeClock(),
                           registry={"scripted": ScriptedAdapter})


def adapter(manager: ProviderManager, name: str) -> ScriptedAdapter:
    found = manager.adapters[name]
    assert isinstance(found, ScriptedAdapter)
    return found


def step(outcome: str) -> Step:
    if outcome == "ok":
        return AdapterResult(model="", text="served", usage=Usage(input_tokens=1000, output_tokens=1000))
    return failure(ErrorKind(outcome))


def expected_walk(names: list[str], plan: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The rules, written plainly: in order; stop at success or a non-recoverable kind; after everyone
    failed, one quick retry of the first provider that was `unavailable`."""
    calls: list[tuple[str, str]] = []
    retryable = None
    for name, (first, _) in zip(names, plan, strict=True):
        calls.append((name, first))
        if first == "ok" or not ErrorKind(first).recoverable:
            return calls
        if first == ErrorKind.UNAVAILABLE and retryable is None:
            retryable = name
    if retryable is not None:
        calls.append((retryable, plan[names.index(retryable)][1]))
    return calls


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.results: list[Result | AllProvidersFailed] = []
        self.job_ids: list[tuple[str, str, str]] = []
        self.events: list[str] = []

    async def on_attempt(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)
        self.events.append(f"attempt:{attempt.provider}")

    async def on_result(self, outcome: Result | AllProvidersFailed) -> None:
        self.results.append(outcome)
        self.events.append("result")

    async def on_job_id(self, provider: str, model: str, job_id: str) -> None:
        self.job_ids.append((provider, model, job_id))
        self.events.append(f"job:{job_id}")

    def hooks(self) -> CallHooks:
        return CallHooks(self.on_attempt, self.on_job_id, self.on_result)


@given(st.lists(st.tuples(OUTCOMES, OUTCOMES), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_fallback_walk_follows_the_rules(plan: list[tuple[str, str]]) -> None:
    asyncio.run(_walk(plan))


async def _walk(plan: list[tuple[str, str]]) -> None:
    names = [f"p{i}" for i in range(len(plan))]
    async with make_manager(names) as manager:
        for name, (first, second) in zip(names, plan, strict=True):
            adapter(manager, name).script.extend([step(first), step(second)])
        request = GenerationRequest(Category.TEXT, prompt="hello", options={"temperature": 0.2})
        seen = Recorder()
        try:
            result: Result | AllProvidersFailed = await manager.generate(request, hooks=seen.hooks())
            attempts = result.attempts
        except AllProvidersFailed as exc:
            result, attempts = exc, exc.attempts
        expected = expected_walk(names, plan)
        # Primary first, then route order; no call after a success or a non-recoverable failure.
        assert [(a.provider, "ok" if a.ok else str(a.kind)) for a in attempts] == expected
        assert attempts[0].provider == names[0] and [a.order for a in attempts] == list(range(len(attempts)))
        # Every attempt reported once, to the hooks, and listed in the final outcome.
        assert seen.attempts == attempts and seen.results == [result]
        # Parameters unchanged on fallback: every provider got the very same request.
        assert all(req is request for name in names for req, _ in adapter(manager, name).calls)
        if isinstance(result, Result):
            assert expected[-1][1] == "ok" and result.provider == expected[-1][0]
            assert result.cost_micros == 3000  # 1k in * 1000 + 1k out * 2000 micro-USD per 1k
        else:
            assert expected[-1][1] != "ok"
            kinds = {k for _, k in expected}
            stopped = any(not ErrorKind(k).recoverable for k in kinds)
            assert (result.retry_at is None) == stopped
            for attempt in attempts:
                assert attempt.provider in str(result)


@given(st.lists(st.tuples(st.sampled_from([ErrorKind.RATE_LIMITED, ErrorKind.QUOTA_EXHAUSTED, ErrorKind.AUTH,
                                            ErrorKind.UNAVAILABLE]),
                          st.floats(1, 20_000)), min_size=1, max_size=4),
       st.floats(1, 20_000))
@settings(max_examples=100, deadline=None)
def test_retry_at_is_the_earliest_deadline(failures: list[tuple[ErrorKind, float]], skipped_wait: float) -> None:
    asyncio.run(_retry_at(failures, skipped_wait))


async def _retry_at(failures: list[tuple[ErrorKind, float]], skipped_wait: float) -> None:
    names = [f"p{i}" for i in range(len(failures))] + ["cooling"]
    clock = FakeClock()
    custom = ManagerSettings(quick_retry_delay_s=0.0, circuit_failures=1, circuit_open_s=90.0, cache_ttl_s={})
    async with make_manager(names, clock, settings=custom) as manager:
        # "cooling" was rate limited by an earlier request: skipped now, but its deadline still counts.
        adapter(manager, "cooling").script.append(failure(ErrorKind.RATE_LIMITED, skipped_wait))
        with pytest.raises(AllProvidersFailed):
            await manager.generate(GenerationRequest(Category.IMAGE, prompt="x"), route=["cooling"])
        clock.advance(0.5)
        waits = {"cooling": skipped_wait - 0.5}
        for name, (kind, wait) in zip(names, failures, strict=False):
            adapter(manager, name).script.append(failure(kind, wait))
            waits[name] = {ErrorKind.RATE_LIMITED: wait, ErrorKind.UNAVAILABLE: max(wait, 90.0)}.get(
                kind, max(wait, custom.long_cooldown_s))
        with pytest.raises(AllProvidersFailed) as caught:
            await manager.generate(GenerationRequest(Category.IMAGE, prompt="y"))
        assert "cooling" in caught.value.skipped and len(caught.value.attempts) == len(failures)
        assert caught.value.retry_at is not None
        earliest = clock.now() + timedelta(seconds=min(waits.values()))
        assert abs(caught.value.retry_at - earliest) <= timedelta(milliseconds=1)


@given(st.floats(0.5, 1000), st.floats(0, 2000))
@settings(max_examples=100, deadline=None)
def test_cooled_down_provider_is_not_called_before_its_deadline(retry_after: float, later: float) -> None:
    asyncio.run(_cooldown(retry_after, later))


async def _cooldown(retry_after: float, later: float) -> None:
    clock = FakeClock()
    async with make_manager(["a", "b"], clock) as manager:
        adapter(manager, "a").script.append(failure(ErrorKind.RATE_LIMITED, retry_after, 429))
        first = await manager.generate(GenerationRequest(Category.TEXT, prompt="1"))
        assert first.provider == "b" and len(adapter(manager, "a").calls) == 1
        clock.advance(later)
        second = await manager.generate(GenerationRequest(Category.TEXT, prompt="2"))
        assert len(adapter(manager, "a").calls) == (2 if later >= retry_after else 1)
        assert second.provider == ("a" if later >= retry_after else "b")
        if later < retry_after:
            assert second.attempts[0].provider == "b"


async def test_labels_pick_route_and_models_and_disabled_are_skipped() -> None:
    label = LabelConfig("Smart", Category.TEXT, 5, route=("off", "b", "a"), models={"b": "b-large"})
    async with make_manager(["a", "b", "off"], labels=[label], disabled=["off"]) as manager:
        assert manager.route_for(Category.TEXT) == ["a", "b", "off"]
        assert manager.route_for(Category.TEXT, "Smart") == ["off", "b", "a"]
        result = await manager.generate(GenerationRequest(Category.TEXT, prompt="q"), label="Smart")
        assert (result.provider, result.model) == ("b", "b-large")
        assert adapter(manager, "b").calls[0][1] == "b-large"
        adapter(manager, "b").script.append(failure(ErrorKind.UNAVAILABLE))
        adapter(manager, "a").script.append(failure(ErrorKind.BAD_REQUEST, status=400))
        with pytest.raises(AllProvidersFailed) as caught:
            await manager.generate(GenerationRequest(Category.TEXT, prompt="r"), label="Smart")
        assert caught.value.skipped == {"off": "disabled: no API key (set OFF_API_KEY)"}
        assert caught.value.kind is ErrorKind.BAD_REQUEST and caught.value.retry_at is None
        with pytest.raises(ValueError, match="unknown label"):
            await manager.generate(GenerationRequest(Category.TEXT, prompt="q"), label="Nope")
        with pytest.raises(ValueError, match="is for text"):
            await manager.generate(GenerationRequest(Category.IMAGE, prompt="q"), label="Smart")


async def test_adapter_cost_wins_and_price_table_is_the_fallback() -> None:
    async with make_manager(["a"]) as manager:
        adapter(manager, "a").script.append(AdapterResult(model="m", text="t", usage=Usage(output_tokens=10),
                                                          cost_micros=777))
        assert (await manager.generate(GenerationRequest(Category.TEXT, prompt="1"))).cost_micros == 777
        adapter(manager, "a").script.append(AdapterResult(model="m", media=(), usage=Usage(images=2)))
        assert (await manager.generate(GenerationRequest(Category.IMAGE, prompt="2"))).cost_micros == 1000


async def test_content_policy_falls_back_only_when_configured() -> None:
    for allowed in (False, True):
        custom = ManagerSettings(quick_retry_delay_s=0.0, fallback_on_content_policy=allowed, cache_ttl_s={})
        async with make_manager(["a", "b"], settings=custom) as manager:
            adapter(manager, "a").script.append(failure(ErrorKind.CONTENT_POLICY, status=400))
            request = GenerationRequest(Category.IMAGE, prompt="p")
            if allowed:
                assert (await manager.generate(request)).provider == "b"
            else:
                with pytest.raises(AllProvidersFailed) as caught:
                    await manager.generate(request)
                assert caught.value.kind is ErrorKind.CONTENT_POLICY and not adapter(manager, "b").calls


async def test_observer_and_hooks_see_everything_and_a_broken_hook_is_harmless() -> None:
    observer, mine = Recorder(), Recorder()

    async def broken(attempt: Attempt) -> None:
        raise RuntimeError("observer down")

    config = scripted_config(["a", "b"], settings=FAST)
    async with ProviderManager(config, observer=observer.hooks(), registry={"scripted": ScriptedAdapter},
                               clock=FakeClock(), client=UNUSED_CLIENT) as manager:
        adapter(manager, "a").script.append(failure(ErrorKind.UNAVAILABLE, status=503))
        result = await manager.generate(GenerationRequest(Category.TEXT, prompt="x"), hooks=mine.hooks())
        assert [a.provider for a in observer.attempts] == ["a", "b"] == [a.provider for a in mine.attempts]
        assert observer.results == [result] == mine.results
        result = await manager.generate(GenerationRequest(Category.TEXT, prompt="y"),
                                        hooks=CallHooks(on_attempt=broken))
        assert result.provider == "a"


async def test_an_adapter_bug_counts_as_invalid_response_and_falls_back() -> None:
    async with make_manager(["a", "b"]) as manager:
        async def crash(*args: Any) -> AdapterResult:
            raise KeyError("choices")

        adapter(manager, "a").generate = crash  # type: ignore[method-assign,assignment]
        result = await manager.generate(GenerationRequest(Category.TEXT, prompt="x"))
        assert result.provider == "b" and result.attempts[0].kind is ErrorKind.INVALID_RESPONSE
