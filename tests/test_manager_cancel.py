"""`ProviderManager.cancel`: best effort, bounded in time, never raises; against the loopback Replicate."""

from __future__ import annotations

import time

import httpx
import pytest

import providers.manager
from providers.config import ProvidersConfig
from providers.manager import ProviderManager
from providers.types import Category
from tests.adapter_support import adapter_config, fake_fixture
from tests.fakes.replicate import FakeReplicate, Prediction

TOKEN = "r8_secret_token_for_tests"
FLUX = "black-forest-labs/flux-schnell"

fake = fake_fixture(FakeReplicate, token=TOKEN)


def make_manager(fake: FakeReplicate, http: httpx.AsyncClient) -> ProviderManager:
    replicate = adapter_config("replicate", fake.base_url, TOKEN, "REPLICATE_API_TOKEN", {Category.IMAGE: FLUX},
                               timeout_s=30.0)
    stability = adapter_config("stability", "http://127.0.0.1:9", "sk", "STABILITY_API_KEY",
                               {Category.IMAGE: "sd3"})
    config = ProvidersConfig("test.toml", {"replicate": replicate, "stability": stability}, {}, {})
    return ProviderManager(config, client=http)


def running(fake: FakeReplicate, job_id: str) -> None:
    fake.predictions[job_id] = Prediction(job_id, FLUX, "", {"prompt": "x"}, status="processing")


async def test_cancel_sends_the_request_and_the_job_stops(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    running(fake, "p1")
    assert await make_manager(fake, http).cancel("replicate", "p1") is True
    assert (fake.calls[-1].method, fake.calls[-1].path) == ("POST", "/v1/predictions/p1/cancel")
    assert fake.predictions["p1"].status == "canceled"


async def test_a_refused_cancel_is_false_not_an_error(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    assert await make_manager(fake, http).cancel("replicate", "unknown") is False  # 404 from the provider
    assert fake.calls[-1].path == "/v1/predictions/unknown/cancel"


async def test_nothing_to_ask_is_false(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    manager = make_manager(fake, http)
    assert await manager.cancel("stability", "job") is False  # no cancel endpoint: nothing is sent
    assert await manager.cancel("gone", "job") is False  # not enabled (or renamed since the job began)
    assert fake.calls == []


async def test_a_provider_that_does_not_answer_holds_the_caller_only_so_long(
        fake: FakeReplicate, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(providers.manager, "CANCEL_TIMEOUT_S", 0.2)
    running(fake, "p1")
    fake.hang = True
    began = time.perf_counter()
    assert await make_manager(fake, http).cancel("replicate", "p1") is False
    assert time.perf_counter() - began < 5.0  # the adapter's own timeout is 30 s


async def test_an_adapter_bug_is_logged_not_raised(fake: FakeReplicate, http: httpx.AsyncClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    manager = make_manager(fake, http)

    async def broken(job_id: str) -> bool:
        raise KeyError(job_id)

    monkeypatch.setattr(manager.adapters["replicate"], "cancel", broken)
    assert await manager.cancel("replicate", "p1") is False
