"""The submit-then-poll helpers every async job adapter shares (providers/adapters/polling.py)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.adapters.polling import data_uri, media_from_url, poll_until, same_origin, tagged_with_job
from providers.base import CallContext
from providers.errors import ErrorKind, ProviderError


@given(running=st.integers(min_value=0, max_value=20), wait_first=st.booleans())
def test_poll_returns_the_first_value_after_exactly_that_many_fetches(running: int, wait_first: bool) -> None:
    fetches: list[int] = []

    async def fetch() -> str | None:
        fetches.append(1)
        return "done" if len(fetches) > running else None

    ctx = CallContext(timeout_s=1.0, poll_interval_s=0.0, max_poll_s=60.0)
    assert asyncio.run(poll_until(fetch, ctx, "job", wait_first=wait_first)) == "done"
    assert len(fetches) == running + 1


async def test_deadline_is_unavailable_and_names_the_provider() -> None:
    fetches = 0

    async def never() -> int | None:
        nonlocal fetches
        fetches += 1
        return None

    ctx = CallContext(timeout_s=1.0, poll_interval_s=0.01, max_poll_s=0.05)
    with pytest.raises(ProviderError) as info:
        await poll_until(never, ctx, "render 7", provider="p")
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.provider == "p"
    assert "render 7 still running" in info.value.message and fetches >= 2  # a last look at the deadline


async def test_a_failing_fetch_propagates_with_the_job_id() -> None:
    async def failed() -> int | None:
        raise ProviderError(ErrorKind.CONTENT_POLICY, "nsfw")

    with pytest.raises(ProviderError) as info:
        with tagged_with_job("job-1"):
            await poll_until(failed, CallContext(timeout_s=1.0, poll_interval_s=0.0), "x")
    assert info.value.kind is ErrorKind.CONTENT_POLICY and info.value.job_id == "job-1"


@pytest.mark.parametrize(("url", "ok"), [
    ("https://api.replicate.com/v1/predictions/abc", True),
    ("https://API.replicate.com/v1/other", True),
    ("http://api.replicate.com/v1/predictions/abc", False),
    ("https://api.replicate.com:8443/v1/predictions/abc", False),
    ("https://evil.example/v1/predictions/abc", False),
    ("/v1/predictions/abc", False),
])
def test_same_origin(url: str, ok: bool) -> None:
    assert same_origin(url, "https://api.replicate.com/v1") is ok


@pytest.mark.parametrize(("url", "mime"), [
    ("https://x/out.png", "image/png"), ("https://x/a/out.JPG?sig=1", "image/jpeg"),
    ("https://x/out.webp", "image/webp"), ("https://x/out.mp4", "video/mp4"), ("https://x/out.mp3", "audio/mpeg"),
    ("https://x/out.wav", "audio/wav"), ("https://x/v1.2/out", "application/x-default"),
])
def test_mime_from_the_extension(url: str, mime: str) -> None:
    media = media_from_url(url, "application/x-default")
    assert media is not None and media.mime == mime and media.url == url


@given(st.binary(max_size=64))
def test_data_uris_round_trip(data: bytes) -> None:
    media = media_from_url(data_uri(data, "image/webp"), "image/png")
    assert media is not None and media.data == data and media.mime == "image/webp" and media.url is None


@pytest.mark.parametrize("url", ["ftp://x/a.png", "data:image/png,notbase64", "data:image/png;base64,@@", ""])
def test_unusable_outputs_are_none(url: str) -> None:
    assert media_from_url(url, "image/png") is None
