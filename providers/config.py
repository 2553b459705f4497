"""Typed configuration of providers, routes and labels (the providers file, design.md).

The loader and its validation live in `providers.loader`; these are the plain types everyone shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any, Literal

from providers.outbound import Origin, origins
from providers.types import MICROS_PER_USD, Category, Usage

Strategy = Literal["priority", "cheapest", "fastest"]
TOTAL_TIMEOUT_FACTOR = 4.0  # total_timeout_s when unset: room for a long answer, yet an end to a trickle


def total_deadline(timeout_s: float, total_timeout_s: float | None) -> float:
    """`total_timeout_s`, else TOTAL_TIMEOUT_FACTOR x `timeout_s` (the per-read timeout)."""
    return total_timeout_s if total_timeout_s is not None else TOTAL_TIMEOUT_FACTOR * timeout_s


def first_token_deadline(timeout_s: float, first_token_timeout_s: float | None,
                         total_timeout_s: float | None) -> float:
    """`first_token_timeout_s`, else `timeout_s` (what a silent provider gets), never past the total."""
    wanted = first_token_timeout_s if first_token_timeout_s is not None else timeout_s
    return min(wanted, total_deadline(timeout_s, total_timeout_s))


# Money never passes through binary floats: a price is kept as the exact decimal it was written as, and the
# one rounding (half-up, to the whole micro-USD) happens once, on the final amount, in `round_micros`.
_PRECISION = 60  # digits; wide enough that no product of a price and a usage count is ever rounded


def exact(value: float | int | str | Decimal) -> Decimal:
    """The decimal a number was written as: a float goes through its shortest repr, never its binary value."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def round_micros(value: Decimal) -> int:
    """An exact micro-USD amount -> whole micro-USD, half-up (the only rounding money ever sees)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usd_to_micros(value: float | int | str | Decimal) -> int:
    """A USD amount (a TOML price, a provider's reported cost) -> whole micro-USD, half-up."""
    return round_micros(usd_to_exact_micros(value))


def usd_to_exact_micros(value: float | int | str | Decimal) -> Decimal:
    """A USD price -> micro-USD kept exact (a price may be a fraction of a micro-USD per unit)."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return exact(value) * MICROS_PER_USD


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices in exact micro-USD (a Decimal: a price may be a fraction of a micro-USD per unit). Keys in the
    file are USD: text_in_per_1k, text_out_per_1k, image, image_edit, video, video_per_second,
    audio_per_1k_chars, transcription_per_minute (of recording)."""

    text_in_per_1k: Decimal = Decimal(0)
    text_out_per_1k: Decimal = Decimal(0)
    image: Decimal = Decimal(0)
    image_edit: Decimal = Decimal(0)
    video: Decimal = Decimal(0)
    video_per_second: Decimal = Decimal(0)
    audio_per_1k_chars: Decimal = Decimal(0)
    transcription_per_minute: Decimal = Decimal(0)

    def exact_cost(self, category: Category, usage: Usage) -> Decimal:
        """The cost in micro-USD before any rounding; each term is an exact decimal product."""
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            if category is Category.TEXT:
                return (usage.input_tokens * exact(self.text_in_per_1k)
                        + usage.output_tokens * exact(self.text_out_per_1k)) / 1000
            if category is Category.IMAGE:
                return max(usage.images, 1) * exact(self.image)
            if category is Category.IMAGE_EDIT:
                return max(usage.images, 1) * exact(self.image_edit or self.image)
            if category is Category.VIDEO:
                return exact(self.video) + exact(usage.seconds) * exact(self.video_per_second)
            if category is Category.AUDIO:
                return usage.characters * exact(self.audio_per_1k_chars) / 1000
            if category is Category.TRANSCRIPTION:
                return exact(usage.seconds) * exact(self.transcription_per_minute) / 60
            return Decimal(0)

    def cost_micros(self, category: Category, usage: Usage) -> int:
        """What is charged and stored: the exact cost rounded once, half-up, to the micro-USD."""
        return round_micros(self.exact_cost(category, usage))

    def unit_price(self, category: Category) -> Decimal:
        """A comparable per-request figure, for the `cheapest` strategy (text: 1k in + 1k out); unrounded,
        so two providers a fraction of a micro-USD apart still sort apart."""
        return self.exact_cost(category, Usage(input_tokens=1000, output_tokens=1000, images=1,
                                               seconds=5.0, characters=1000))


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str  # the key under [providers.NAME]
    kind: str  # adapter family: openai, openrouter, xai, aimlapi, poe, groq, deepseek, anthropic, ...
    base_url: str
    api_key: str | None  # resolved from the environment; never logged, never stored
    api_key_env: str
    timeout_s: float = 60.0  # per read: connecting, and each wait for more of the body
    models: Mapping[Category, str] = field(default_factory=dict)
    prices: Prices = Prices()
    headers: Mapping[str, str] = field(default_factory=dict)  # extra headers (e.g. HTTP-Referer)
    options: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific (voice_id, poll_interval_s)
    daily_budget_micros: int | None = None  # skipped for the rest of the UTC day once spent
    model_prices: Mapping[str, Prices] = field(default_factory=dict)  # model -> prices, for label overrides
    # A provider that trickles bytes never trips `timeout_s`; these bound the time as a whole. None: derived.
    total_timeout_s: float | None = None  # one HTTP exchange or one stream, start to end
    first_token_timeout_s: float | None = None  # a stream's first text (keep-alives do not count)

    @property
    def total_deadline_s(self) -> float:
        return total_deadline(self.timeout_s, self.total_timeout_s)

    @property
    def first_token_deadline_s(self) -> float:
        return first_token_deadline(self.timeout_s, self.first_token_timeout_s, self.total_timeout_s)

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
    vision: bool = False  # text labels: its models read images in the chat (`ChatMessage.images`)


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

    def origins(self) -> frozenset[Origin]:
        """The origins of the enabled providers' base URLs: media there is fetched whatever its address."""
        return origins(p.base_url for p in self.enabled_providers().values())

    def disabled_providers(self) -> dict[str, str]:
        return {n: f"no API key (set {p.api_key_env})" for n, p in self.providers.items() if not p.enabled}

    def labels_for(self, category: Category) -> list[LabelConfig]:
        return [lbl for lbl in self.labels.values() if lbl.category is category]

    def default_label(self, category: Category) -> LabelConfig | None:
        found = self.labels_for(category)
        return found[0] if found else None
