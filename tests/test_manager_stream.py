"""stream_text: fallback before the first delta, never after it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.config import ManagerSettings
from providers.errors import AllProvidersFailed, ErrorKind, ProviderError
from providers.health import CircuitState, Ticket
from providers.types import AdapterResult, Category, GenerationRequest
from tests.fakes.scripted import FakeClock, failure
from tests.test_manager import Recorder, adapter, make_manager

RECOVERABLE = [k for k in ErrorKind if k.recoverable]


@given(st.integers(0, 3), st.sampled_from(RECOVERABLE))
@settings(max_examples=40, deadline=None)
def test_falls_back_before_the_first_delta_and_not_after(delivered: int, kind: ErrorKind) -> None:
    asyncio.run(_stream(delivered, kind))


async def _stream(delivered: int, kind: ErrorKind) -> None:
    async with make_manager(["a", "b"]) as manager:
        pieces: list[str | ProviderError] = [f"w{i} " for i in range(delivered)]
        adapter(manager, "a").stream = [*pieces, failure(kind, status=500)]
        seen = Recorder()
        stream = manager.stream_text(GenerationRequest(Category.TEXT, prompt="hi"), hooks=seen.hooks())
        got: list[str] = []
        if delivered == 0:
            async for delta in stream:
                got.append(delta)
            assert "".join(got) == "answer from b" and stream.result is not None
            assert stream.result.provider == "b" and [a.provider for a in stream.result.attempts] == ["a", "b"]
            assert stream.result.text == "answer from b" and stream.result.usage.output_tokens == 2
            assert seen.results == [stream.result]
        else:
            with pytest.raises(ProviderError) as caught:
                async for delta in stream:
                    got.append(delta)
            assert got == pieces and caught.value.kind is kind and caught.value.provider == "a"
            assert not adapter(manager, "b").calls and stream.result is None
            [outcome] = seen.results
            assert isinstance(outcome, AllProvidersFailed) and [a.provider for a in outcome.attempts] == ["a"]
        assert [a.provider for a in seen.attempts] == (["a", "b"] if delivered == 0 else ["a"])


async def test_non_recoverable_stops_and_exhaustion_raises_all_failed() -> None:
    async with make_manager(["a", "b"]) as manager:
        adapter(manager, "a").stream = [failure(ErrorKind.CONTENT_POLICY, status=400)]
        with pytest.raises(AllProvidersFailed) as caught:
            async for _ in manager.stream_text(GenerationRequest(Category.TEXT, prompt="x")):
                pass
        assert caught.value.kind is ErrorKind.CONTENT_POLICY and not adapter(manager, "b").calls
        for name in ("a", "b"):
            adapter(manager, name).stream = [failure(ErrorKind.RATE_LIMITED, 5, 429)]
        with pytest.raises(AllProvidersFailed) as caught:
            async for _ in manager.stream_text(GenerationRequest(Category.TEXT, prompt="y")):
                pass
        assert [a.provider for a in caught.value.attempts] == ["a", "b"] and caught.value.retry_at is not None


async def test_closing_early_releases_the_half_open_trial() -> None:
    clock = FakeClock()
    rules = ManagerSettings(quick_retry_delay_s=0.0, circuit_failures=3, circuit_open_s=60, cache_ttl_s={})
    async with make_manager(["a"], clock, settings=rules) as manager:
        for _ in range(3):
            ticket = manager.health.admit("a", Category.TEXT)
            assert isinstance(ticket, Ticket)
            manager.health.failure(ticket, failure(ErrorKind.UNAVAILABLE))
        clock.advance(60)
        stream = manager.stream_text(GenerationRequest(Category.TEXT, prompt="x"))
        assert await stream.__anext__() == "answer "
        await stream.aclose()
        assert manager.health.category_health("a", Category.TEXT).circuit is CircuitState.HALF_OPEN
        assert manager.health.blocked("a", Category.TEXT) is None  # the trial slot is free again


async def test_an_adapter_without_streaming_serves_one_delta() -> None:
    async with make_manager(["a"]) as manager:
        type(adapter(manager, "a")).streams_text = False
        try:
            adapter(manager, "a").script.append(AdapterResult(model="m", text="whole answer"))
            stream = manager.stream_text(GenerationRequest(Category.TEXT, prompt="x"))
            assert [d async for d in stream] == ["whole answer"]
            assert stream.result is not None and stream.result.text == "whole answer"
        finally:
            type(adapter(manager, "a")).streams_text = True
        with pytest.raises(ValueError, match="serves text"):
            manager.stream_text(GenerationRequest(Category.IMAGE, prompt="x"))
