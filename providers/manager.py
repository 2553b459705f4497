"""`ProviderManager`: the one object the bot talks to (docs/interfaces.md, "providers/").

It owns one shared `httpx.AsyncClient`, one adapter per enabled provider, and the health, budget and
latency books. The fallback walk is in `providers.calls`, streaming in `providers.streaming`, ordering in
`providers.routing`, and health rules in `providers.health`. `manager.catalogue` (`providers.catalogue`)
is what the bot offers: labels and enabled providers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx
from loguru import logger

from providers.adapters import ADAPTERS
from providers.attempt import Runtime
from providers.base import Adapter
from providers.bodies import DEFAULT_MAX_MEDIA_BYTES
from providers.budget import DailySpend
from providers.calls import resume_job, run_chain
from providers.catalogue import Catalogue
from providers.config import LabelConfig, ProvidersConfig
from providers.errors import AllProvidersFailed
from providers.health import Alert, CategoryHealth, Clock, HealthBook, SystemClock
from providers.outbound import Origin
from providers.result import CallHooks, Reporter, Result
from providers.routing import Candidate, Chain, LatencyBook, resolve_chain
from providers.shared import LocalState, SharedState
from providers.singleflight import ResultCache, SingleFlight
from providers.streaming import TextStream
from providers.types import Category, GenerationRequest

AlertHook = Callable[[Alert], Awaitable[None]]
CANCEL_TIMEOUT_S = 10.0  # a cancel is clean-up: it never holds the caller longer than this


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    name: str
    kind: str
    enabled: bool
    disabled_reason: str | None
    categories: Mapping[Category, CategoryHealth]  # the categories it has a model for
    spent_today_micros: int
    daily_budget_micros: int | None


def make_client(max_connections: int = 512) -> httpx.AsyncClient:
    """One client for every provider: many concurrent requests, HTTP/1.1 keep-alive. Per-call timeouts
    come from each provider's `timeout_s`.

    Keep-alive is allowed for every connection: httpcore closes any connection that turns idle while the
    pool holds more connections than `max_keepalive_connections` (it counts all of them, busy ones too),
    so under a burst a lower cap made nearly every request open a new TCP connection. Idle ones still
    close after `keepalive_expiry`."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                          keepalive_expiry=60.0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0, connect=10.0))


class ProviderManager:
    def __init__(self, config: ProvidersConfig, client: httpx.AsyncClient | None = None,
                 observer: CallHooks | None = None, on_alert: AlertHook | None = None, *,
                 clock: Clock | None = None, registry: Mapping[str, type[Adapter]] | None = None,
                 max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES, shared: SharedState | None = None) -> None:
        """`shared`: health deadlines and daily spend kept in step with other processes (providers.shared);
        None shares nothing. Started by `start()` (or `async with`), stopped by `aclose()`."""
        self.config = config
        self.settings = config.settings
        self.observer = observer
        self.on_alert = on_alert
        self.clock: Clock = clock or SystemClock()
        self._own_client = client is None
        self.client = client or make_client()
        self.adapters = self._build_adapters(registry if registry is not None else ADAPTERS)
        self.catalogue = Catalogue(config, self.adapters)
        self.health = HealthBook(self.settings, self.clock)
        self.spend = DailySpend(self.clock)
        self.latency = LatencyBook(self.settings.latency_window)
        self.shared: SharedState = shared if shared is not None else LocalState()
        self.shared.bind(self.health, self.spend)
        self._rt = Runtime(self.settings, self.health, self.spend, self.latency, self.clock, self._alert,
                           max_media_bytes)
        self._flights: SingleFlight[Result] = SingleFlight()
        self._cache: ResultCache[Result] = ResultCache(self.settings.cache_max_entries)
        self._chains: dict[tuple[Category, str | None, tuple[str, ...] | None], Chain] = {}
        self._background: set[asyncio.Task[None]] = set()

    def _build_adapters(self, registry: Mapping[str, type[Adapter]]) -> dict[str, Adapter]:
        adapters: dict[str, Adapter] = {}
        for name, reason in self.config.disabled_providers().items():
            logger.warning("provider {} is disabled: {}", name, reason)  # once, at start-up
        for name, provider in self.config.enabled_providers().items():
            cls = registry.get(provider.kind)
            if cls is None:
                logger.warning("provider {} is disabled: no adapter for kind {!r}", name, provider.kind)
                continue
            adapters[name] = cls(provider, self.client)
        return adapters

    async def start(self) -> None:
        """Start sharing state with other processes (a no-op without `shared`); never raises for an
        unreachable store. Idempotent."""
        await self.shared.start()

    async def aclose(self) -> None:
        await self.shared.aclose()
        if self._background:  # alerts still being sent: a little patience, but a hung channel cannot block exit
            _, late = await asyncio.wait(self._background, timeout=5.0)
            for task in late:
                task.cancel()
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> ProviderManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def allowed_origins(self) -> frozenset[Origin]:
        """Origins whose media URLs may be fetched even on loopback or private addresses (providers.outbound)."""
        return self.config.origins()

    # --- routing -----------------------------------------------------------------------------
    def label(self, label: str | LabelConfig | None) -> LabelConfig | None:
        if label is None or isinstance(label, LabelConfig):
            return label
        found = self.config.labels.get(label)
        if found is None:
            raise ValueError(f"unknown label {label!r} (known: {', '.join(self.config.labels)})")
        return found

    def chain(self, category: Category, label: str | LabelConfig | None = None,
              route: list[str] | tuple[str, ...] | None = None) -> Chain:
        """The usable providers and models for these choices (resolved once, then reused)."""
        found = self.label(label)
        if found is not None and found.category is not category:
            raise ValueError(f"label {found.name!r} is for {found.category}, not {category}")
        key = (category, found.name if found else None, tuple(route) if route else None)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = resolve_chain(self.config, self.adapters, category, found, key[2])
        return chain

    def route_for(self, category: Category, label: str | LabelConfig | None = None) -> list[str]:
        return list(self.chain(category, label).route)

    # --- calls -------------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest, label: str | LabelConfig | None = None,
                       route: list[str] | tuple[str, ...] | None = None, hooks: CallHooks | None = None) -> Result:
        """One request through the route, falling back as needed (see providers.calls). Identical
        concurrent requests share one provider call; see providers.result for what that means for accounting."""
        chain = self.chain(request.category, label, route)
        reporter = Reporter(hooks, self.observer)
        started = time.perf_counter()
        key = request.fingerprint(chain.key)
        ttl = self.settings.cache_ttl_s.get(request.category, 0.0)
        if ttl > 0 and (hit := self._cache.get(key, self.clock.monotonic())) is not None:
            return await self._reused(hit, started, reporter, shared=False)
        led = False

        async def lead() -> Result:
            nonlocal led
            led = True
            return await run_chain(self._rt, chain, request, reporter)

        try:
            result, shared = await self._flights.run(key, lead)
        except AllProvidersFailed as exc:
            if led:
                raise
            mine = AllProvidersFailed(exc.category, exc.attempts, exc.retry_at, exc.skipped)
            await reporter.result(mine)
            raise mine from None
        if shared:
            return await self._reused(result, started, reporter, shared=True)
        if ttl > 0:
            self._cache.put(key, result, ttl, self.clock.monotonic())
        return result

    async def _reused(self, result: Result, started: float, reporter: Reporter, *, shared: bool) -> Result:
        view = dataclasses.replace(result, cached=True, shared=shared, cost_micros=0, attempts=[], job_id=None,
                                   latency_ms=(time.perf_counter() - started) * 1000.0)
        await reporter.result(view)
        return view

    def stream_text(self, request: GenerationRequest, label: str | LabelConfig | None = None,
                    hooks: CallHooks | None = None, route: list[str] | tuple[str, ...] | None = None) -> TextStream:
        """`async for delta in stream`; falls back only before the first delta (providers.streaming)."""
        if request.category is not Category.TEXT:
            raise ValueError(f"stream_text serves text, not {request.category}")
        return TextStream(self._rt, self.chain(request.category, label, route), request,
                          Reporter(hooks, self.observer))

    async def resume(self, provider: str, job_id: str, request: GenerationRequest, model: str,
                     hooks: CallHooks | None = None) -> Result:
        """Poll a job created before (e.g. before a restart) to its end; never creates a new one, so it is
        not held back by cooldowns (the job is already paid for)."""
        reporter = Reporter(hooks, self.observer)
        adapter = self.adapters.get(provider)
        if adapter is None:
            failure = AllProvidersFailed(request.category, [], None, {provider: "not enabled: cannot resume its job"})
            await reporter.result(failure)
            raise failure
        return await resume_job(self._rt, Candidate(provider, model, adapter, adapter.config.prices_for(model),
                                                    adapter.config.daily_budget_micros), job_id, request, reporter)

    async def cancel(self, provider: str, job_id: str) -> bool:
        """Ask `provider` to stop an async job: best effort, bounded in time, never raises. True when the
        provider took the cancel request (which does not mean the job has stopped)."""
        adapter = self.adapters.get(provider)
        if adapter is None:
            logger.warning("job {} of {} not cancelled: the provider is not enabled", job_id, provider)
            return False
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                sent = await adapter.cancel(job_id)
        except TimeoutError:
            logger.warning("job {} of {} not cancelled: no answer within {:g} s", job_id, provider, CANCEL_TIMEOUT_S)
            return False
        except Exception as exc:  # an adapter bug must not fail the caller's clean-up
            logger.opt(exception=exc).warning("job {} of {} not cancelled: {}", job_id, provider, type(exc).__name__)
            return False
        logger.info("job {} of {}: {}", job_id, provider, "cancel requested" if sent else "not cancelled")
        return sent

    # --- health ------------------------------------------------------------------------------
    def health_snapshot(self) -> list[ProviderHealth]:
        disabled = self.config.disabled_providers()
        snapshot = []
        for name, provider in self.config.providers.items():
            reason = disabled.get(name)
            if reason is None and name not in self.adapters:
                reason = f"no adapter for kind {provider.kind!r}"
            categories = {c: self.health.category_health(name, c) for c in provider.models}
            snapshot.append(ProviderHealth(name, provider.kind, reason is None, reason, categories,
                                           self.spend.spent(name), provider.daily_budget_micros))
        return snapshot

    def _alert(self, alert: Alert) -> None:
        logger.bind(provider=alert.provider).warning("provider {} needs attention: {} until {}: {}",
                                                     alert.provider, alert.kind, alert.until.isoformat(),
                                                     alert.message[:200])
        if self.on_alert is not None:
            task = asyncio.ensure_future(self._send_alert(self.on_alert, alert))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    @staticmethod
    async def _send_alert(hook: AlertHook, alert: Alert) -> None:
        try:
            await hook(alert)
        except Exception as exc:  # the alert channel failing must not fail requests
            logger.opt(exception=exc).error("on_alert failed for {}", alert.provider)
