"""Every adapter family (`kind`): the one table of base URLs, key names and categories, read by the
loader (without importing any adapter) and by the OpenAI-compatible adapters.

The default base URLs are design.md's "Defaults per kind"; `official_key_envs` are the names each
provider's own SDK reads, accepted in addition to `NAME_API_KEY`. `categories` is what the family's API
can do at all; the adapter class may support less (the loader checks both). `vision`: its chat API takes
images (which models see is the labels' business: `vision = true`). An OpenAI-compatible kind also names
its error-body dialect and the headers it sends on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from providers.types import Category

_T, _I, _E, _V, _A = Category.TEXT, Category.IMAGE, Category.IMAGE_EDIT, Category.VIDEO, Category.AUDIO
_S = Category.TRANSCRIPTION  # speech to text

OpenAIDialect = Literal["openai", "openrouter", "xai", "aimlapi"]

# OpenRouter shows these on its leaderboard; the old and the new header name are both honoured.
_OPENROUTER_HEADERS = {"X-OpenRouter-Title": "AI Telegram Bot", "X-Title": "AI Telegram Bot"}


@dataclass(frozen=True, slots=True)
class KindInfo:
    base_url: str
    official_key_envs: tuple[str, ...]
    categories: frozenset[Category]
    openai_dialect: OpenAIDialect | None = None  # set: an OpenAI-compatible API, errors in this dialect
    headers: Mapping[str, str] = field(default_factory=dict)  # sent on every call
    vision: bool = False  # its chat API carries images


KINDS: dict[str, KindInfo] = {
    "openai": KindInfo("https://api.openai.com/v1", ("OPENAI_API_KEY",), frozenset({_T, _I, _E, _A, _S}), "openai",
                       vision=True),
    "openrouter": KindInfo("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), frozenset({_T, _I}),
                           "openrouter", _OPENROUTER_HEADERS, vision=True),
    "xai": KindInfo("https://api.x.ai/v1", ("XAI_API_KEY",), frozenset({_T, _I}), "xai", vision=True),
    "aimlapi": KindInfo("https://api.aimlapi.com/v1", ("AIMLAPI_API_KEY", "AIML_API_KEY"), frozenset({_T, _I}),
                        "aimlapi", vision=True),
    "poe": KindInfo("https://api.poe.com/v1", ("POE_API_KEY",), frozenset({_T}), "openai", vision=True),
    "groq": KindInfo("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), frozenset({_T, _S}), "openai",
                     vision=True),
    "deepseek": KindInfo("https://api.deepseek.com", ("DEEPSEEK_API_KEY",), frozenset({_T}), "openai"),
    "anthropic": KindInfo("https://api.anthropic.com", ("ANTHROPIC_API_KEY",), frozenset({_T}), vision=True),
    "replicate": KindInfo("https://api.replicate.com/v1", ("REPLICATE_API_TOKEN", "REPLICATE_API_KEY"),
                          frozenset({_T, _I, _E, _V, _A})),
    "stability": KindInfo("https://api.stability.ai", ("STABILITY_API_KEY", "STABILITY_KEY"), frozenset({_I, _E})),
    "fal": KindInfo("https://queue.fal.run", ("FAL_KEY", "FAL_API_KEY"), frozenset({_I, _E, _V, _A})),
    "elevenlabs": KindInfo("https://api.elevenlabs.io", ("ELEVENLABS_API_KEY", "ELEVEN_API_KEY"), frozenset({_A})),
    "huggingface": KindInfo("https://router.huggingface.co", ("HF_TOKEN", "HUGGINGFACE_API_KEY"), frozenset({_I})),
}


def env_prefix(name: str) -> str:
    """`my-openrouter` -> `MY_OPENROUTER`: the prefix of NAME_API_KEY / NAME_BASE_URL."""
    return "".join(ch if ch.isalnum() else "_" for ch in name).upper()
