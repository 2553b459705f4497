"""The adapter registry: `kind` in the providers file -> the class that speaks that API.

The OpenAI-compatible services share one family (`openai_compat`); each such kind is a subclass that only
names its kind, and takes its base URL, categories, error dialect and headers from `providers.kinds`.
"""

from __future__ import annotations

from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.elevenlabs import ElevenLabsAdapter
from providers.adapters.fal import FalAdapter
from providers.adapters.huggingface import HuggingFaceAdapter
from providers.adapters.openai_compat import ADAPTER_CLASSES as OPENAI_COMPATIBLE
from providers.adapters.replicate import ReplicateAdapter
from providers.adapters.stability import StabilityAdapter
from providers.base import Adapter

ADAPTERS: dict[str, type[Adapter]] = {
    **OPENAI_COMPATIBLE,  # openai, openrouter, xai, aimlapi, poe, groq, deepseek
    "anthropic": AnthropicAdapter,
    "replicate": ReplicateAdapter,
    "stability": StabilityAdapter,
    "fal": FalAdapter,
    "elevenlabs": ElevenLabsAdapter,
    "huggingface": HuggingFaceAdapter,
}

__all__ = ["ADAPTERS"]
