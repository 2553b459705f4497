"""AI providers behind one manager: adapters per API family, fallback, health, accounting hooks.

    config = load_providers()                 # providers.toml, validated; keys from the environment
    async with ProviderManager(config, observer=hooks, on_alert=alert) as manager:
        result = await manager.generate(GenerationRequest(Category.TEXT, prompt="hi"), label="Fast chat")

Errors: every provider failure is a `ProviderError` with an `ErrorKind`; when a route is exhausted the
manager raises `AllProvidersFailed` holding every attempt and the earliest `retry_at`. Knows nothing of
aiogram or the database: it reports through `CallHooks`.
"""

from __future__ import annotations

from providers.catalogue import Catalogue
from providers.config import (
    LabelConfig,
    ManagerSettings,
    Prices,
    ProviderConfig,
    ProvidersConfig,
    RouteConfig,
    usd_to_micros,
)
from providers.errors import AllProvidersFailed, Attempt, ErrorKind, ProviderError
from providers.health import Alert, CategoryHealth, CircuitState
from providers.loader import ProvidersFileError, load_providers
from providers.manager import ProviderHealth, ProviderManager
from providers.result import CallHooks, Result
from providers.shared import LocalState, SharedState, make_shared_state
from providers.streaming import TextStream
from providers.types import (
    AdapterResult,
    Category,
    ChatMessage,
    EditOp,
    GenerationRequest,
    ImagePart,
    Media,
    StreamChunk,
    Usage,
)

__all__ = [
    "AdapterResult", "Alert", "AllProvidersFailed", "Attempt", "CallHooks", "Catalogue", "Category", "CategoryHealth",
    "ChatMessage", "CircuitState", "EditOp", "ErrorKind", "GenerationRequest", "ImagePart", "LabelConfig", "LocalState",
    "ManagerSettings", "Media", "Prices", "ProviderConfig", "ProviderError", "ProviderHealth", "ProviderManager",
    "ProvidersConfig", "ProvidersFileError", "Result", "RouteConfig", "SharedState", "StreamChunk", "TextStream",
    "Usage", "load_providers", "make_shared_state", "usd_to_micros",
]
