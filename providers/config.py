"""Typed configuration of providers, routes and labels (the providers file, design.md).

The loader and its validation live in `providers.loader`; these are the plain types everyone shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from providers.types import MICROS_PER_USD, Category, Usage

Strategy = Literal["priority", "cheapest", "fastest"]


def usd_to_micros(value: float | int | str | Decimal) -> int:
    """Exact conversion of a price written in USD (TOML float) to integer micro-USD."""
    return int((Decimal(str(value)) * MICROS_PER_USD).to_integral_value())


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices in micro-USD. Keys in the file are USD: text_in_per_1k, text_out_per_1k, image,
    image_edit, video, video_per_second, audio_per_1k_chars."""

    text_in_per_1k: int = 0
    text_out_per_1k: int = 0
    image: int = 0
    image_edit: int = 0
    video: int = 0
    video_per_second: int = 0
    audio_per_1k_chars: int = 0

    def cost_micros(self, category: Category, usage: Usage) -> int:
        if category is Category.TEXT:
            return (usage.input_tokens * self.text_in_per_1k + usage.output_tokens * self.text_out_per_1k) // 1000
        if category is Category.IMAGE:
            return max(usage.images, 1) * self.image
        if category is Category.IMAGE_EDIT:
            return max(usage.images, 1) * (self.image_edit or self.image)
        if category is Category.VIDEO:
            return self.video + int(usage.seconds * self.video_per_second)
        if category is Category.AUDIO:
            return usage.characters * self.audio_per_1k_chars // 1000
        return 0

    def unit_price(self, category: Category) -> int:
        """A comparable per-request figure, for the `cheapest` strategy (text: 1k in + 1k out)."""
        return self.cost_micros(category, Usage(input_tokens=1000, output_tokens=1000, images=1,
                                                seconds=5.0, characters=1000))


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str  # the key under [providers.NAME]
    kind: str  # adapter family: openai, openrouter, xai, aimlapi, poe, groq, deepseek, anthropic, ...
    base_url: str
    api_key: str | None  # resolved from the environment; never logged, never stored
    api_key_env: str
    timeout_s: float = 60.0
    models: Mapping[Category, str] = field(default_factory=dict)
    prices: Prices = Prices()
    headers: Mapping[str, str] = field(default_factory=dict)  # extra headers (e.g. HTTP-Referer)
    options: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific (voice_id, poll_interval_s)
    daily_budget_micros: int | None = None  # skipped for the rest of the UTC day once spent
    model_prices: Mapping[str, Prices] = field(default_factory=dict)  # model -> prices, for label overrides

    @property
    def enabled(self) -> bool:
        return bool(self.api_key)

    def model_for(self, category: Category) -> str | None:
        return self.models.get(category)

    def prices_for(self, model: str) -> Prices:
        """A label may pick another model than the provider's default; it is priced on its own."""
        return self.model_prices.get(model, self.prices)


@dataclass(frozen=True, slots=True)
class LabelConfig:
    name: str
    category: Category
    credits: int
    route: tuple[str, ...] | None = None  # overrides [routes] for this label
    description: str = ""
    models: Mapping[str, str] = field(default_factory=dict)  # provider -> model override for this label


@dataclass(frozen=True, slots=True)
class RouteConfig:
    category: Category
    providers: tuple[str, ...]
    strategy: Strategy = "priority"


@dataclass(frozen=True, slots=True)
class ManagerSettings:
    long_cooldown_s: float = 3600.0  # quota / auth
    default_rate_limit_cooldown_s: float = 30.0  # 429 without Retry-After
    circuit_failures: int = 3  # consecutive `unavailable` that open the circuit
    circuit_open_s: float = 60.0
    quick_retry_delay_s: float = 0.5
    fallback_on_content_policy: bool = False
    cache_ttl_s: Mapping[Category, float] = field(default_factory=lambda: {Category.AUDIO: 3600.0})
    latency_window: int = 50  # recent samples kept per provider for the `fastest` strategy
    cache_max_entries: int = 256  # bound of the result cache (audio bytes add up)


@dataclass(frozen=True, slots=True)
class ProvidersConfig:
    source: str  # the file it came from, for messages
    providers: Mapping[str, ProviderConfig]
    routes: Mapping[Category, RouteConfig]
    labels: Mapping[str, LabelConfig]
    settings: ManagerSettings = ManagerSettings()

    def enabled_providers(self) -> dict[str, ProviderConfig]:
        return {n: p for n, p in self.providers.items() if p.enabled}

    def disabled_providers(self) -> dict[str, str]:
        return {n: f"no API key (set {p.api_key_env})" for n, p in self.providers.items() if not p.enabled}

    def labels_for(self, category: Category) -> list[LabelConfig]:
        return [lbl for lbl in self.labels.values() if lbl.category is category]

    def default_label(self, category: Category) -> LabelConfig | None:
        found = self.labels_for(category)
        return found[0] if found else None
