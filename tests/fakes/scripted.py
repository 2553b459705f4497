"""An in-process adapter that plays a script, for fast manager tests (the real adapters are tested
against loopback fakes; the manager's integration tests use those too).

    adapter = manager.adapters["a"]               # a ScriptedAdapter, built by the manager
    adapter.script.append(ProviderError(ErrorKind.RATE_LIMITED, "slow down", status=429, retry_after_s=5))
    adapter.script.append(AdapterResult(model="m", text="hi"))   # then this; afterwards `default`
    adapter.gate = asyncio.Event()                # calls wait until the test sets it
    adapter.stream = ["Hel", "lo", ProviderError(...)]   # what stream_text yields / raises
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import httpx

from providers.base import Adapter, CallContext
from providers.config import LabelConfig, ManagerSettings, Prices, ProviderConfig, ProvidersConfig, RouteConfig
from providers.errors import ErrorKind, ProviderError
from providers.types import AdapterResult, Category, GenerationRequest, StreamChunk, Usage

Step = AdapterResult | ProviderError


class ScriptedAdapter(Adapter):
    kind: ClassVar[str] = "scripted"
    categories: ClassVar[frozenset[Category]] = frozenset(Category)
    streams_text: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        self.script: deque[Step] = deque()
        self.default: Step = AdapterResult(model="", text=f"answer from {self.name}",
                                           usage=Usage(input_tokens=100, output_tokens=50, images=1))
        self.calls: list[tuple[GenerationRequest, str]] = []
        self.resumed: list[str] = []
        self.gate: asyncio.Event | None = None
        self.job_id: str | None = None  # reported through ctx as soon as the call starts
        self.stream: list[str | ProviderError] | None = None

    def _next(self) -> Step:
        return self.script.popleft() if self.script else self.default

    async def _play(self, model: str, ctx: CallContext) -> AdapterResult:
        if self.job_id is not None:
            ctx.report_job(self.job_id)
        if self.gate is not None:
            await self.gate.wait()
        step = self._next()
        if isinstance(step, ProviderError):
            raise ProviderError(step.kind, step.message, status=step.status, retry_after_s=step.retry_after_s,
                                job_id=step.job_id)
        return dataclasses.replace(step, model=step.model or model, job_id=step.job_id or self.job_id)

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        self.calls.append((request, model))
        return await self._play(model, ctx)

    async def resume(self, job_id: str, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        self.resumed.append(job_id)
        return await self._play(model, ctx)

    def stream_text(self, request: GenerationRequest, model: str, ctx: CallContext) -> AsyncIterator[StreamChunk]:
        self.calls.append((request, model))
        return self._stream(model)

    async def _stream(self, model: str) -> AsyncIterator[StreamChunk]:
        if self.gate is not None:
            await self.gate.wait()
        for piece in self.stream if self.stream is not None else ["answer ", f"from {self.name}"]:
            if isinstance(piece, ProviderError):
                raise piece
            yield StreamChunk(text=piece)
        yield StreamChunk(usage=Usage(input_tokens=10, output_tokens=2), model=model)


def failure(kind: ErrorKind, retry_after_s: float | None = None, status: int | None = None) -> ProviderError:
    return ProviderError(kind, f"scripted {kind}", status=status, retry_after_s=retry_after_s)


class FakeClock:
    """Monotonic and wall time that move together, only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = 1000.0
        self.start = start or datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def scripted_config(names: Iterable[str], *, settings: ManagerSettings | None = None,
                    prices: Mapping[str, Prices] | None = None, budgets: Mapping[str, int] | None = None,
                    labels: Iterable[LabelConfig] = (), strategy: str = "priority",
                    disabled: Iterable[str] = ()) -> ProvidersConfig:
    names = list(names)
    off = set(disabled)
    providers = {
        n: ProviderConfig(name=n, kind="scripted", base_url="http://127.0.0.1:9", api_key=None if n in off else "k",
                          api_key_env=f"{n.upper()}_API_KEY", timeout_s=1.0,
                          models={c: f"{n}-{c}" for c in Category},
                          prices=(prices or {}).get(n, Prices(text_in_per_1k=1000, text_out_per_1k=2000, image=500)),
                          daily_budget_micros=(budgets or {}).get(n))
        for n in names
    }
    routes = {c: RouteConfig(c, tuple(names), strategy) for c in Category}  # type: ignore[arg-type]
    return ProvidersConfig("scripted.toml", providers, routes, {lbl.name: lbl for lbl in labels},
                           settings or ManagerSettings(quick_retry_delay_s=0.0, cache_ttl_s={}))
