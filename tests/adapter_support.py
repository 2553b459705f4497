"""What the adapter tests share: a config and a call context for an adapter over a loopback fake, the
fake as a fixture, the ProviderError a call raises, and a made-up answer for an offline adapter's error().
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from providers.base import CallContext, JobIdCallback
from providers.config import ProviderConfig
from providers.errors import ProviderError
from providers.types import Category
from tests.fakes.base import FakeServer

FakeT = TypeVar("FakeT", bound=FakeServer)


def adapter_config(kind: str, base_url: str, key: str | None, key_env: str,
                   models: dict[Category, str] | None = None, options: dict[str, Any] | None = None,
                   **extra: Any) -> ProviderConfig:
    """A provider named after its kind, as the adapter tests configure one."""
    return ProviderConfig(name=kind, kind=kind, base_url=base_url, api_key=key, api_key_env=key_env,
                          models=models or {}, options=options or {}, **extra)


def call_context(timeout_s: float = 5.0, *, poll_interval_s: float = 0.01, max_poll_s: float = 5.0,
                 on_job_id: JobIdCallback | None = None) -> CallContext:
    """Short waits: a loopback fake answers in milliseconds, and a polled job is done in a few polls."""
    return CallContext(timeout_s=timeout_s, on_job_id=on_job_id, poll_interval_s=poll_interval_s,
                       max_poll_s=max_poll_s)


def fake_fixture(make: Callable[..., FakeT], **kwargs: Any) -> Any:
    """A `fake` fixture: `make(**kwargs)` serving on loopback for the length of one test."""

    @pytest.fixture(name="fake")
    async def fake() -> AsyncIterator[FakeT]:
        server = make(**kwargs)
        await server.start()
        yield server
        await server.stop()

    return fake


async def failure(call: Awaitable[Any]) -> ProviderError:
    """The ProviderError the call raises (the test fails if it raises none)."""
    with pytest.raises(ProviderError) as info:
        await call
    return info.value


def answer(status: int, payload: Any = None, url: str = "http://provider.test/x",
           headers: dict[str, str] | None = None) -> httpx.Response:
    """A response as if from `url`, for an adapter's error() without a server (JSON unless bytes)."""
    request = httpx.Request("POST", url)
    if isinstance(payload, bytes):
        return httpx.Response(status, content=payload, headers=headers, request=request)
    return httpx.Response(status, json=payload, headers=headers, request=request)
