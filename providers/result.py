"""What a managed call returns (`Result`) and whom it tells along the way (`CallHooks`).

Accounting rule for shared answers: a `Result` with `cached=True` did not cause a provider call of its
own: it is a single-flight follower (`shared=True`, it waited for an identical request already in
flight) or a cache hit. Its `cost_micros` is 0 and its `attempts` is empty, because the provider call
it reused was reported (attempts, job id, cost) exactly once, through the hooks of the request that
made it. The caller still charges its own user's credits per its label; only provider spend and the
attempt log are not counted twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger

from providers.errors import AllProvidersFailed, Attempt
from providers.types import Category, Media, Usage


@dataclass(frozen=True, slots=True)
class Result:
    category: Category
    text: str | None
    media: tuple[Media, ...]
    provider: str
    model: str
    usage: Usage
    cost_micros: int
    latency_ms: float
    attempts: list[Attempt] = field(default_factory=list)  # every call made for this request, in order
    job_id: str | None = None
    cached: bool = False  # no provider call of its own (see the module docstring)
    shared: bool = False  # cached because an identical request was in flight (single flight)


AttemptHook = Callable[[Attempt], Awaitable[None]]
JobIdHook = Callable[[str, str, str], Awaitable[None]]  # (provider, model, job_id)
ResultHook = Callable[[Result | AllProvidersFailed], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CallHooks:
    """Optional async callbacks; the manager-wide observer is one too. A hook that raises is logged and
    ignored: a broken observer must not fail a request that the provider served."""

    on_attempt: AttemptHook | None = None
    on_job_id: JobIdHook | None = None
    on_result: ResultHook | None = None


class Reporter:
    """Fans one call's events out to its own hooks and the observer."""

    __slots__ = ("_pending", "_targets")

    def __init__(self, hooks: CallHooks | None, observer: CallHooks | None) -> None:
        self._targets = tuple(h for h in (hooks, observer) if h is not None)
        self._pending: list[asyncio.Task[None]] = []

    async def attempt(self, attempt: Attempt) -> None:
        for target in self._targets:
            if target.on_attempt is not None:
                await _guarded(target.on_attempt, attempt)

    async def result(self, outcome: Result | AllProvidersFailed) -> None:
        for target in self._targets:
            if target.on_result is not None:
                await _guarded(target.on_result, outcome)

    def job_id(self, provider: str, model: str, job_id: str) -> None:
        """Sync, because adapters report job ids from inside their polling loop: the async hooks run
        as tasks at once, and `drain()` makes sure they finished before the attempt is reported."""
        for target in self._targets:
            if target.on_job_id is not None:
                self._pending.append(asyncio.ensure_future(_guarded(target.on_job_id, provider, model, job_id)))

    async def drain(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)


async def _guarded(hook: Callable[..., Awaitable[None]], *args: Any) -> None:
    try:
        await hook(*args)
    except Exception as exc:  # see CallHooks: a broken hook must not fail the request
        logger.opt(exception=exc).error("provider hook {} failed", getattr(hook, "__qualname__", hook))
