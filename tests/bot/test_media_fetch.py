"""/image end to end when the provider answers with a URL: fetched only as the outbound policy allows.

A refused URL fails the request with the short "couldn't fetch" message and a refund; the internal
service behind it is never read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bot.core_harness import CoreHarness
from tests.fakes.media_host import MediaHost
from tests.fakes.openai import PNG_1X1

USER = 4004


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        yield harness


@pytest.fixture
async def internal() -> AsyncIterator[MediaHost]:
    async with MediaHost() as host:  # a loopback service that is no configured provider
        yield host


def answer_with_url(h: CoreHarness, url: str) -> None:
    h.first.fail_next(200, {"created": 1762000000, "data": [{"url": url}]}, path_contains="/images/generations")


def refused_and_refunded(h: CoreHarness) -> None:
    assert "couldn't fetch the result" in (h.tg.last_text(USER) or "")
    assert h.tg.media(USER) == []
    [request] = h.requests(USER)
    assert request["status"] == "failed" and request["error_kind"] == "media_fetch"
    assert h.credits(USER) == 10


async def test_a_media_url_on_the_providers_own_origin_is_delivered(h: CoreHarness) -> None:
    answer_with_url(h, f"{h.first.url}/files/img-1.png")
    await h.say(USER, "/image a red square")
    [photo] = h.tg.media(USER)
    assert photo.file is not None and photo.file.data == PNG_1X1
    assert len(h.first.calls_to("/files/")) == 1


async def test_a_redirect_to_another_loopback_port_is_refused_and_refunded(h: CoreHarness,
                                                                          internal: MediaHost) -> None:
    h.first.file_redirect = f"{internal.url}/secret"
    answer_with_url(h, f"{h.first.url}/files/img-1.png")
    await h.say(USER, "/image a red square")
    refused_and_refunded(h)
    assert internal.calls == [] and "internal-only" not in " ".join(h.tg.texts(USER))


async def test_an_http_url_to_localhost_that_is_no_provider_is_refused(h: CoreHarness, internal: MediaHost) -> None:
    answer_with_url(h, f"http://localhost:{internal.port}/secret")
    await h.say(USER, "/image a red square")
    refused_and_refunded(h)
    assert internal.calls == []


async def test_a_body_over_the_media_cap_is_refused(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, max_media_bytes=10) as h:
        answer_with_url(h, f"{h.first.url}/files/img-1.png")  # PNG_1X1 is larger than 10 bytes
        await h.say(USER, "/image a red square")
        refused_and_refunded(h)
