"""FalAdapter against the loopback FakeFal queue (real HTTP, real wire format)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.adapters.fal import FalAdapter
from providers.errors import ErrorKind, ProviderError
from providers.types import Category, EditOp, GenerationRequest
from tests.adapter_support import adapter_config, answer, fake_fixture
from tests.adapter_support import call_context as ctx
from tests.fakes.fal import FakeFal

KEY = "fal_secret_key_for_tests"
SCHNELL = "fal-ai/flux/schnell"
KLING = "fal-ai/kling-video/v2.1/standard/text-to-video"


def make_adapter(fake: FakeFal, http: httpx.AsyncClient, key: str | None = KEY, **options: Any) -> FalAdapter:
    config = adapter_config("fal", fake.url, key, "FAL_KEY", {Category.IMAGE: SCHNELL}, options, timeout_s=5.0)
    return FalAdapter(config, http)


fake = fake_fixture(FakeFal, key=KEY)


IMAGE = GenerationRequest(Category.IMAGE, prompt="a red fox", options={"image_size": "landscape_4_3",
                                                                       "num_outputs": 2})


async def test_submit_poll_result(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.polls_until_done, fake.num_images = 3, 2
    result = await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    submit = fake.calls[0]
    assert (submit.method, submit.path) == ("POST", "/fal-ai/flux/schnell")
    assert submit.headers["Authorization"] == f"Key {KEY}"
    assert submit.json == {"prompt": "a red fox", "image_size": "landscape_4_3", "num_images": 2}
    request_id = next(iter(fake.jobs))
    assert result.job_id == f"{SCHNELL}|{request_id}"
    # the subpath is dropped from the status and result URLs, as the real queue does
    assert [c.path for c in fake.calls[1:]] == [f"/fal-ai/flux/requests/{request_id}/status"] * 3 + [
        f"/fal-ai/flux/requests/{request_id}"]
    assert [m.mime for m in result.media] == ["image/jpeg", "image/jpeg"]
    assert all(m.url and m.url.startswith(fake.url + "/files/") for m in result.media)
    assert result.usage.images == 2 and result.model == SCHNELL


async def test_status_200_while_running_is_accepted(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.status_200_while_running, fake.polls_until_done = True, 3
    result = await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert fake.status_polls == 3 and result.media


async def test_single_image_output(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.output = "image"
    result = await make_adapter(fake, http).generate(IMAGE, "fal-ai/recraft-v3", ctx())
    assert len(result.media) == 1 and result.media[0].mime == "image/jpeg" and result.usage.images == 1


async def test_video_output(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.output = "video"
    request = GenerationRequest(Category.VIDEO, prompt="waves", options={"duration_s": "5", "aspect_ratio": "16:9"})
    result = await make_adapter(fake, http).generate(request, KLING, ctx())
    assert fake.calls[0].json == {"prompt": "waves", "duration": "5", "aspect_ratio": "16:9"}
    assert fake.calls[1].path.startswith("/fal-ai/kling-video/requests/")
    assert [m.mime for m in result.media] == ["video/mp4"] and result.usage.seconds == 5.0
    async with httpx.AsyncClient() as c:  # the URL really serves the file
        assert (await c.get(result.media[0].url or "")).content.startswith(b"\x00\x00\x00\x18ftyp")


async def test_image_edit_sends_data_uris(fake: FakeFal, http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.IMAGE_EDIT, prompt="make it blue", image=b"\x89PNGsrc", mask=b"mask",
                                edit_op=EditOp.INPAINT)
    await make_adapter(fake, http).generate(request, "fal-ai/flux-pro/v1/fill", ctx())
    sent = fake.calls[0].json
    assert sent["image_url"] == "data:image/png;base64,iVBOR3NyYw==" and sent["mask_url"].startswith("data:")


async def test_kontext_gets_the_instruction_and_the_picture_as_image_url(http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.IMAGE_EDIT, prompt="make it night", image=b"\xff\xd8\xffsrc",
                                image_mime="image/jpeg", edit_op=EditOp.INSTRUCT)
    async with FakeFal(KEY, required_fields=("prompt", "image_url")) as fake:  # Kontext's inputs
        adapter = make_adapter(fake, http)
        assert adapter.supports(request, "fal-ai/flux-pro/kontext")
        result = await adapter.generate(request, "fal-ai/flux-pro/kontext", ctx())
    submit = fake.calls[0]
    assert submit.path == "/fal-ai/flux-pro/kontext"
    assert submit.json == {"prompt": "make it night", "image_url": "data:image/jpeg;base64,/9j/c3Jj"}
    assert result.media and result.usage.images == 1
    upscale = GenerationRequest(Category.IMAGE_EDIT, image=b"x", edit_op=EditOp.UPSCALE)
    assert adapter.supports(upscale, "fal-ai/flux-pro/kontext").reason == "cannot do the upscale edit"


async def test_job_id_reported_while_queued(fake: FakeFal, http: httpx.AsyncClient) -> None:
    seen: list[tuple[str, str]] = []

    def on_job(job_id: str) -> None:
        seen.append((job_id, fake.jobs[job_id.split("|")[1]].status))

    result = await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx(on_job_id=on_job))
    assert seen == [(result.job_id, "IN_QUEUE")]


async def test_deadline_then_resume_without_a_new_submit(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.polls_until_done = 8
    adapter = make_adapter(fake, http)
    with pytest.raises(ProviderError) as info:
        await adapter.generate(IMAGE, SCHNELL, ctx(max_poll_s=0.03))
    assert info.value.kind is ErrorKind.UNAVAILABLE and "still running" in info.value.message
    job_id = info.value.job_id or ""
    assert job_id.startswith(SCHNELL + "|") and fake.submits == 1
    result = await adapter.resume(job_id, IMAGE, SCHNELL, ctx())
    assert fake.submits == 1 and result.job_id == job_id and result.media


async def test_resume_with_a_malformed_job_id(fake: FakeFal, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).resume("no-separator", IMAGE, SCHNELL, ctx())
    assert info.value.kind is ErrorKind.BAD_REQUEST and fake.calls == []


async def test_cancel_puts_to_the_app_url(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.polls_until_done = 100
    adapter = make_adapter(fake, http)
    with pytest.raises(ProviderError) as info:
        await adapter.generate(IMAGE, SCHNELL, ctx(max_poll_s=0.0))
    job_id = info.value.job_id or ""
    assert await adapter.cancel(job_id) is True
    request_id = job_id.split("|")[1]
    last = fake.calls[-1]
    assert (last.method, last.path) == ("PUT", f"/fal-ai/flux/requests/{request_id}/cancel")
    assert fake.jobs[request_id].cancelled
    with pytest.raises(ProviderError) as after:  # the cancelled job ends COMPLETED with an error
        await adapter.resume(job_id, IMAGE, SCHNELL, ctx())
    assert after.value.kind is ErrorKind.UNAVAILABLE
    await adapter.cancel(job_id)  # already completed: best effort, does not raise
    assert await adapter.cancel("garbage") is False


@pytest.mark.parametrize(("error", "kind"), [
    ({"error": "Internal error while running the model", "error_type": "runner_server_error"},
     ErrorKind.UNAVAILABLE),
    ({"error": "Request timed out", "error_type": "request_timeout"}, ErrorKind.UNAVAILABLE),
    ({"error": "The content could not be processed because it contained material flagged by a content checker.",
      "error_type": "content_policy_violation"}, ErrorKind.CONTENT_POLICY),
])
async def test_completed_with_error(fake: FakeFal, http: httpx.AsyncClient, error: dict[str, str],
                                    kind: ErrorKind) -> None:
    fake.complete_with_error = error
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert info.value.kind is kind and info.value.status == 200
    assert (info.value.job_id or "").startswith(SCHNELL + "|")
    assert fake.calls[-1].path.endswith("/status")  # a failed job's result is not fetched


async def test_all_images_nsfw_is_content_policy(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.num_images, fake.nsfw = 2, [True, True]
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert info.value.kind is ErrorKind.CONTENT_POLICY


async def test_flagged_images_are_dropped(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.num_images, fake.nsfw = 3, [False, True, False]
    result = await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert [m.url for m in result.media] == [f"{fake.url}/files/{next(iter(fake.jobs))}-{i}.jpeg" for i in (0, 2)]
    assert result.usage.images == 3  # generated (and billed) even when held back


async def test_runtime_validation_error_is_bad_request(http: httpx.AsyncClient) -> None:
    async with FakeFal(key=KEY, required_fields=("prompt", "image_url")) as fake:
        assert isinstance(fake, FakeFal)
        with pytest.raises(ProviderError) as info:
            await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
        assert info.value.kind is ErrorKind.BAD_REQUEST and info.value.status == 422
        assert "body.image_url: field required" in info.value.message and info.value.job_id


ERRORS: list[tuple[int, Any, dict[str, str], ErrorKind, float | None]] = [
    (422, {"detail": [{"loc": ["body", "num_images"], "msg": "ensure this value is less than or equal to 4",
                       "type": "value_error.number.not_le"}]}, {}, ErrorKind.BAD_REQUEST, None),
    (422, {"detail": [{"loc": ["body", "prompt"], "msg": "The prompt was flagged.",
                       "type": "content_policy_violation"}]}, {}, ErrorKind.CONTENT_POLICY, None),
    (401, {"detail": "Authentication is required to access this endpoint."}, {}, ErrorKind.AUTH, None),
    (403, {"detail": "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."},
     {}, ErrorKind.QUOTA_EXHAUSTED, None),
    (403, {"detail": "Access denied"}, {}, ErrorKind.AUTH, None),
    (429, {"detail": "Too many requests"}, {"Retry-After": "7"}, ErrorKind.RATE_LIMITED, 7.0),
    (429, {"detail": "Rate limit exceeded"}, {}, ErrorKind.RATE_LIMITED, None),
    (503, {"detail": "Request timed out", "error_type": "request_timeout"}, {}, ErrorKind.UNAVAILABLE, None),
    (504, {"detail": "Gateway timeout", "error_type": "request_timeout"}, {}, ErrorKind.UNAVAILABLE, None),
    (500, "<html>oops</html>", {}, ErrorKind.UNAVAILABLE, None),
    (404, {"detail": "Application 'nope' not found"}, {}, ErrorKind.BAD_REQUEST, None),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry"), ERRORS)
async def test_submit_error_shapes(fake: FakeFal, http: httpx.AsyncClient, status: int, body: Any,
                                   headers: dict[str, str], kind: ErrorKind, retry: float | None) -> None:
    fake.fail_next(status, body, headers)
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert (info.value.kind, info.value.status, info.value.retry_after_s) == (kind, status, retry)
    assert info.value.job_id is None and fake.jobs == {}


async def test_error_while_polling_keeps_the_job_id(fake: FakeFal, http: httpx.AsyncClient) -> None:
    fake.fail_next(503, {"detail": "Service unavailable"}, path_contains="/status")
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.job_id == f"{SCHNELL}|{next(iter(fake.jobs))}"


async def test_wrong_and_missing_key(fake: FakeFal, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http, key="wrong").generate(IMAGE, SCHNELL, ctx())
    assert info.value.kind is ErrorKind.AUTH and info.value.status == 401
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http, key=None).generate(IMAGE, SCHNELL, ctx())
    assert info.value.kind is ErrorKind.AUTH and len(fake.calls) == 1


@pytest.mark.parametrize(("where", "body"), [
    ("submit", "<html>not json</html>"),
    ("submit", {"status": "IN_QUEUE"}),
    ("/status", {"state": "done"}),
    ("/status", {"status": "EXPLODED"}),
    ("result", {"images": [{"width": 1}]}),
    ("result", ["not", "an", "object"]),
])
async def test_garbage_is_invalid_response(fake: FakeFal, http: httpx.AsyncClient, where: str,
                                           body: Any) -> None:
    if where == "submit":
        fake.fail_next(200, body, path_contains=SCHNELL)
    elif where == "/status":
        fake.fail_next(200, body, path_contains="/status")
    else:  # scripted answers are used in order: a finished status, then the garbage result
        fake.fail_next(200, {"status": "COMPLETED"}, path_contains="/status")
        fake.fail_next(200, body, path_contains="/requests/")
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, SCHNELL, ctx())
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


async def test_model_without_app_is_bad_request(fake: FakeFal, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, "flux", ctx())
    assert info.value.kind is ErrorKind.BAD_REQUEST and fake.calls == []


OFFLINE = FalAdapter(adapter_config("fal", "https://queue.fal.run", KEY, "FAL_KEY"), httpx.AsyncClient())


@given(prefix=st.text(max_size=100), suffix=st.text(max_size=100))
def test_exhausted_balance_403_is_quota_whatever_surrounds_it(prefix: str, suffix: str) -> None:
    detail = f"{prefix}User is locked. Reason: Exhausted balance{suffix}"
    error = OFFLINE.error(answer(403, {"detail": detail}, "https://queue.fal.run/a/b"))
    assert error.kind is ErrorKind.QUOTA_EXHAUSTED and error.status == 403
