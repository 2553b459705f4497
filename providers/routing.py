"""Which providers a request may use, and in what order.

A `Chain` is the static part (route, label, models, adapters), resolved once per (category, label, route)
and reused; `order()` applies the dynamic part on every call: health, budget, and the route's strategy
(priority = as written; cheapest = by `Prices.unit_price`; fastest = by recent median latency, providers
without samples first so they get measured). `incapable()` is the part that depends on the request: the
providers whose adapter cannot serve it (`Adapter.supports`), never tried.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from loguru import logger

from providers.base import Adapter
from providers.budget import DailySpend
from providers.config import LabelConfig, Prices, ProvidersConfig, Strategy
from providers.health import Block, HealthBook
from providers.types import Category, GenerationRequest


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: str
    model: str
    adapter: Adapter
    prices: Prices
    daily_budget_micros: int | None


@dataclass(frozen=True, slots=True)
class Chain:
    category: Category
    route: tuple[str, ...]  # as configured, usable or not
    candidates: tuple[Candidate, ...]  # the usable ones, in route order
    strategy: Strategy
    unusable: Mapping[str, str]  # provider -> why it can never serve this chain (no key, no model...)
    key: str  # identifies the provider/model chain, for single flight and the cache


def resolve_chain(config: ProvidersConfig, adapters: Mapping[str, Adapter], category: Category,
                  label: LabelConfig | None, route: tuple[str, ...] | None) -> Chain:
    configured = config.routes.get(category)
    names = route or (label.route if label is not None else None) or (configured.providers if configured else ())
    overrides = label.models if label is not None else {}
    candidates: list[Candidate] = []
    unusable: dict[str, str] = {}
    for name in names:
        provider = config.providers.get(name)
        if provider is None:
            unusable[name] = "not defined in the providers file"
            continue
        model = overrides.get(name) or provider.model_for(category)
        adapter = adapters.get(name)
        if not provider.enabled:
            unusable[name] = f"disabled: no API key (set {provider.api_key_env})"
        elif adapter is None:
            unusable[name] = f"disabled: no adapter for kind {provider.kind!r}"
        elif model is None:
            unusable[name] = f"has no model for {category}"
        elif category not in adapter.categories:
            unusable[name] = f"its adapter does not serve {category}"
        else:
            candidates.append(Candidate(name, model, adapter, provider.prices_for(model),
                                        provider.daily_budget_micros))
    key = "|".join(f"{c.provider}={c.model}" for c in candidates)
    strategy: Strategy = configured.strategy if configured else "priority"
    return Chain(category, tuple(names), tuple(candidates), strategy, unusable, key)


class LatencyBook:
    """Recent successful latencies per (provider, category), for the `fastest` strategy."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._samples: dict[tuple[str, Category], deque[float]] = {}

    def add(self, provider: str, category: Category, latency_ms: float) -> None:
        key = (provider, category)
        samples = self._samples.get(key)
        if samples is None:
            samples = self._samples[key] = deque(maxlen=self.window)
        samples.append(latency_ms)

    def median(self, provider: str, category: Category) -> float | None:
        samples = self._samples.get((provider, category))
        return statistics.median(samples) if samples else None


def order(chain: Chain, health: HealthBook, spend: DailySpend,
          latency: LatencyBook) -> tuple[list[Candidate], dict[str, Block]]:
    """The candidates to try now, best first, and the blocked ones with why and until when."""
    ready: list[Candidate] = []
    blocked: dict[str, Block] = {}
    for candidate in chain.candidates:
        block = (health.blocked(candidate.provider, chain.category)
                 or spend.blocked(candidate.provider, candidate.daily_budget_micros))
        if block is None:
            ready.append(candidate)
        else:
            blocked[candidate.provider] = block
    if chain.strategy == "cheapest":
        ready.sort(key=lambda c: c.prices.unit_price(chain.category))  # stable: ties keep route order
    elif chain.strategy == "fastest":
        def speed(c: Candidate) -> tuple[int, float]:
            median = latency.median(c.provider, chain.category)
            return (0, 0.0) if median is None else (1, median)
        ready.sort(key=speed)
    return ready, blocked


def incapable(chain: Chain, request: GenerationRequest) -> dict[str, str]:
    """provider -> why its adapter cannot serve this request (it sees no images, lacks the operation,
    cannot read the format); each one logged as skipped."""
    unable: dict[str, str] = {}
    for candidate in chain.candidates:
        support = candidate.adapter.supports(request, candidate.model)
        if not support:
            unable[candidate.provider] = f"{candidate.model} {support.reason}"
            logger.bind(provider=candidate.provider, category=str(chain.category)).info(
                "{} skipped for this {} request: {} {}", candidate.provider, chain.category, candidate.model,
                support.reason)
    return unable
