"""ReplicateAdapter against the loopback FakeReplicate (real HTTP, real wire format)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from loguru import logger

from providers.adapters.replicate import ReplicateAdapter
from providers.errors import ErrorKind, ProviderError
from providers.types import Category, EditOp, GenerationRequest
from tests.adapter_support import adapter_config, answer, fake_fixture
from tests.adapter_support import call_context as ctx
from tests.fakes.replicate import FakeReplicate, Prediction

TOKEN = "r8_secret_token_for_tests"
FLUX = "black-forest-labs/flux-schnell"
VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


def make_adapter(fake: FakeReplicate, http: httpx.AsyncClient, token: str | None = TOKEN,
                 **options: Any) -> ReplicateAdapter:
    config = adapter_config("replicate", fake.base_url, token, "REPLICATE_API_TOKEN", {Category.IMAGE: FLUX},
                            options, timeout_s=5.0)
    return ReplicateAdapter(config, http)


fake = fake_fixture(FakeReplicate, token=TOKEN)


IMAGE = GenerationRequest(Category.IMAGE, prompt="a red fox", options={"aspect_ratio": "16:9", "num_outputs": 1})


async def test_create_then_poll_to_success(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.polls_until_done = 3
    result = await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    create = fake.calls[0]
    assert create.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert create.json == {"input": {"prompt": "a red fox", "aspect_ratio": "16:9", "num_outputs": 1}}
    assert create.headers["Prefer"] == "wait=4"  # 80% of the 5 s timeout: the answer beats our own timeout
    assert "Cancel-After" not in create.headers
    assert fake.creates == 1 and fake.polls == 3
    assert result.job_id is not None and fake.predictions[result.job_id].status == "succeeded"
    assert len(result.media) == 1 and result.media[0].mime == "image/png"
    assert result.media[0].url is not None and result.media[0].url.startswith(fake.url + "/files/")
    assert result.usage.images == 1 and result.model == FLUX


async def test_prefer_wait_answers_at_once(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.prefer_wait_completes = True
    result = await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert fake.creates == 1 and fake.polls == 0
    assert result.media and result.media[0].url


async def test_prefer_wait_configurable_and_cancel_after(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.prefer_wait_completes = True
    adapter = make_adapter(fake, http, prefer_wait_s=0, cancel_after="5m")
    await adapter.generate(IMAGE, FLUX, ctx())
    assert "Prefer" not in fake.calls[0].headers and fake.calls[0].headers["Cancel-After"] == "5m"
    assert fake.polls == 2  # without Prefer the fake answers `starting`, so the adapter polled


async def test_pinned_version_and_bare_version(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    adapter = make_adapter(fake, http)
    await adapter.generate(IMAGE, f"stability-ai/sdxl:{VERSION}", ctx())
    await adapter.generate(IMAGE, VERSION, ctx())
    creates = [c for c in fake.calls if c.method == "POST"]
    assert [c.path for c in creates] == ["/v1/predictions", "/v1/predictions"]
    assert all(c.json["version"] == VERSION and c.json["input"]["prompt"] == "a red fox" for c in creates)


async def test_model_that_is_not_owner_name_is_bad_request(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, "just-a-name", ctx())
    assert info.value.kind is ErrorKind.BAD_REQUEST and fake.calls == []


@pytest.mark.parametrize("num", [1, 3])
async def test_list_output(fake: FakeReplicate, http: httpx.AsyncClient, num: int) -> None:
    fake.num_outputs = num
    result = await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert len(result.media) == num and result.usage.images == num
    assert len({m.url for m in result.media}) == num


async def test_single_url_output_video(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.output_style, fake.output_ext = "string", "mp4"
    request = GenerationRequest(Category.VIDEO, prompt="waves", options={"duration_s": 5})
    result = await make_adapter(fake, http).generate(request, "minimax/video-01", ctx())
    assert fake.calls[0].json["input"] == {"prompt": "waves", "duration": 5}
    assert [m.mime for m in result.media] == ["video/mp4"]
    assert result.usage.seconds == 5
    async with httpx.AsyncClient() as c:  # the URL really serves the file
        assert (await c.get(result.media[0].url or "")).content.startswith(b"\x00\x00\x00\x18ftyp")


async def test_video_seconds_fall_back_to_predict_time(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.output_style, fake.output_ext, fake.predict_time = "string", "mp4", 7.5
    result = await make_adapter(fake, http).generate(GenerationRequest(Category.VIDEO, prompt="w"), "a/b", ctx())
    assert result.usage.seconds == 7.5


async def test_token_output_is_joined_text(http: httpx.AsyncClient) -> None:
    async with FakeReplicate(token=TOKEN, output_style="tokens") as fake:
        assert isinstance(fake, FakeReplicate)
        request = GenerationRequest(Category.TEXT, prompt="hi", system="be brief", max_tokens=20)
        result = await make_adapter(fake, http).generate(request, "meta/meta-llama-3-8b-instruct", ctx())
        assert result.text == "Hello, world!" and result.media == ()
        assert (result.usage.input_tokens, result.usage.output_tokens) == (7, 4)
        assert fake.calls[0].json["input"] == {"prompt": "hi", "system_prompt": "be brief", "max_tokens": 20}


async def test_audio_sends_text_and_counts_characters(http: httpx.AsyncClient) -> None:
    async with FakeReplicate(token=TOKEN, output_style="string", output_ext="wav",
                             required_fields=("text",)) as fake:
        assert isinstance(fake, FakeReplicate)
        request = GenerationRequest(Category.AUDIO, prompt="hello there", options={"voice": "af_bella"})
        result = await make_adapter(fake, http).generate(request, "jaaari/kokoro-82m", ctx())
        assert fake.calls[0].json["input"] == {"text": "hello there", "voice": "af_bella"}
        assert result.media[0].mime == "audio/wav" and result.usage.characters == 11


async def test_image_edit_sends_data_uris(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.IMAGE_EDIT, prompt="make it blue", image=b"\x89PNGsrc",
                                mask=b"mask", edit_op=EditOp.INPAINT)
    adapter = make_adapter(fake, http, image_field="input_image")
    result = await adapter.generate(request, "black-forest-labs/flux-kontext-pro", ctx())
    inputs = fake.calls[0].json["input"]
    assert inputs["input_image"] == "data:image/png;base64,iVBOR3NyYw=="
    assert inputs["mask"] == "data:image/png;base64,bWFzaw=="
    assert result.usage.images == 1


async def test_kontext_gets_the_instruction_and_the_picture_as_input_image(http: httpx.AsyncClient) -> None:
    request = GenerationRequest(Category.IMAGE_EDIT, prompt="make the sky purple", image=b"\x89PNGsrc",
                                edit_op=EditOp.INSTRUCT)
    async with FakeReplicate(TOKEN, required_fields=("prompt", "input_image")) as fake:  # Kontext's inputs
        result = await make_adapter(fake, http).generate(request, "black-forest-labs/flux-kontext-pro", ctx())
        swap = GenerationRequest(Category.IMAGE_EDIT, prompt="a dog", image=b"\x89PNGsrc",
                                 edit_op=EditOp.SEARCH_REPLACE, search_prompt="the cat")
        await make_adapter(fake, http).generate(swap, "black-forest-labs/flux-kontext-pro", ctx())
    first, second = (c.json["input"] for c in fake.calls if c.method == "POST")
    assert first == {"prompt": "make the sky purple", "input_image": "data:image/png;base64,iVBOR3NyYw=="}
    assert second["prompt"] == "Replace the cat with a dog. Keep everything else unchanged."
    assert fake.calls[0].path == "/v1/models/black-forest-labs/flux-kontext-pro/predictions"
    assert result.usage.images == 1 and result.media


def test_kontext_does_the_instruction_operations_and_other_models_the_fixed_ones(http: httpx.AsyncClient) -> None:
    adapter = ReplicateAdapter(adapter_config("replicate", "http://127.0.0.1:9", TOKEN, "K"), http)

    def ops(model: str) -> set[EditOp]:
        return {op for op in EditOp if adapter.supports(GenerationRequest(Category.IMAGE_EDIT, edit_op=op), model)}

    assert ops("black-forest-labs/flux-kontext-max") == {EditOp.INSTRUCT, EditOp.SEARCH_REPLACE, EditOp.INPAINT}
    assert ops("nightmareai/real-esrgan") == set(EditOp) - {EditOp.INSTRUCT}


async def test_data_uri_output_is_decoded(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    # Replicate may inline small files in a sync answer instead of a URL
    fake.fail_next(201, {"id": "inl", "status": "succeeded", "output": ["data:image/webp;base64,UklGRg=="]})
    result = await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert result.media[0].data == b"RIFF" and result.media[0].mime == "image/webp"
    assert result.media[0].url is None and fake.polls == 0


@pytest.mark.parametrize(("reason", "kind"), [
    ("NSFW content detected. Try running it again, or try a different prompt.", ErrorKind.CONTENT_POLICY),
    ("Prompt flagged as sensitive (E005)", ErrorKind.CONTENT_POLICY),
    ("CUDA out of memory", ErrorKind.UNAVAILABLE),
])
async def test_failed_prediction_kinds(fake: FakeReplicate, http: httpx.AsyncClient, reason: str,
                                       kind: ErrorKind) -> None:
    fake.fail_with = reason
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert info.value.kind is kind and info.value.status == 200 and reason[:10] in info.value.message
    assert info.value.job_id in fake.predictions  # the failed job is named, for the request log


async def test_canceled_prediction_is_unavailable(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    def cancel_on_server(job_id: str) -> None:
        fake.predictions[job_id].status = "canceled"

    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, FLUX, ctx(on_job_id=cancel_on_server))
    assert info.value.kind is ErrorKind.UNAVAILABLE and "canceled" in info.value.message


async def test_job_id_reported_while_the_job_still_runs(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    seen: list[tuple[str, str]] = []
    result = await make_adapter(fake, http).generate(
        IMAGE, FLUX, ctx(on_job_id=lambda job: seen.append((job, fake.predictions[job].status))))
    assert seen == [(result.job_id, "starting")]
    assert fake.predictions[seen[0][0]].status == "succeeded"


async def test_deadline_then_resume_without_a_new_create(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.polls_until_done = 6
    adapter = make_adapter(fake, http)
    with pytest.raises(ProviderError) as info:
        await adapter.generate(IMAGE, FLUX, ctx(max_poll_s=0.03, poll_interval_s=0.01))
    assert info.value.kind is ErrorKind.UNAVAILABLE and "still running" in info.value.message
    job_id = info.value.job_id
    assert job_id is not None and fake.predictions[job_id].status == "processing"
    assert fake.creates == 1
    result = await adapter.resume(job_id, IMAGE, FLUX, ctx())
    assert fake.creates == 1 and result.job_id == job_id and result.media
    assert all(c.path == f"/v1/predictions/{job_id}" for c in fake.calls[1:])


async def test_resume_of_unknown_prediction_is_bad_request(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).resume("nope", IMAGE, FLUX, ctx())
    assert info.value.kind is ErrorKind.BAD_REQUEST and info.value.status == 404 and fake.creates == 0


async def test_poll_failure_keeps_the_job_id(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.fail_next(502, "<html>Bad Gateway</html>", path_contains="/v1/predictions/")
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert info.value.kind is ErrorKind.UNAVAILABLE and info.value.job_id in fake.predictions


async def test_cancel_posts_to_the_prediction(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.polls_until_done = 100
    adapter = make_adapter(fake, http)
    with pytest.raises(ProviderError) as info:
        await adapter.generate(IMAGE, FLUX, ctx(max_poll_s=0.0))
    job_id = info.value.job_id or ""
    assert await adapter.cancel(job_id) is True
    last = fake.calls[-1]
    assert (last.method, last.path) == ("POST", f"/v1/predictions/{job_id}/cancel")
    assert last.headers["Authorization"] == f"Bearer {TOKEN}"
    assert fake.predictions[job_id].status == "canceled"
    assert await adapter.cancel("unknown-id") is False  # best effort: a failed cancel does not raise


async def test_foreign_poll_url_is_not_followed(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    fake.predictions["p1"] = Prediction("p1", FLUX, "", {"prompt": "x"}, status="processing")
    fake.fail_next(201, {"id": "p1", "status": "starting", "urls": {"get": "https://elsewhere.example/p1"}})
    result = await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert result.job_id == "p1" and fake.calls[1].path == "/v1/predictions/p1"


PROBLEMS: list[tuple[int, Any, dict[str, str], ErrorKind, float | None]] = [
    (402, {"title": "Insufficient credit", "status": 402,
           "detail": "You have insufficient credit to run this model. Go to billing to top up."}, {},
     ErrorKind.QUOTA_EXHAUSTED, None),
    (401, {"title": "Unauthenticated", "detail": "You did not pass a valid authentication token", "status": 401},
     {}, ErrorKind.AUTH, None),
    (403, {"title": "Forbidden", "detail": "You do not have permission to run this model", "status": 403}, {},
     ErrorKind.AUTH, None),
    (404, {"title": "Not found", "detail": "The requested resource could not be found.", "status": 404}, {},
     ErrorKind.BAD_REQUEST, None),
    (429, {"title": "Request was throttled", "status": 429,
           "detail": "Request was throttled. Your rate limit resets in ~30s."}, {}, ErrorKind.RATE_LIMITED, 30.0),
    (429, {"detail": "Request was throttled. Your rate limit resets in ~30s.", "status": 429},
     {"Retry-After": "12"}, ErrorKind.RATE_LIMITED, 12.0),
    (500, {"detail": "Internal server error", "status": 500}, {}, ErrorKind.UNAVAILABLE, None),
    (503, "<html><body>Service Unavailable</body></html>", {}, ErrorKind.UNAVAILABLE, None),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind", "retry"), PROBLEMS)
async def test_error_shapes(fake: FakeReplicate, http: httpx.AsyncClient, status: int, body: Any,
                            headers: dict[str, str], kind: ErrorKind, retry: float | None) -> None:
    fake.fail_next(status, body, headers)
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert (info.value.kind, info.value.status, info.value.retry_after_s) == (kind, status, retry)
    assert info.value.job_id is None and info.value.provider == "replicate"


async def test_validation_error_lists_the_fields(http: httpx.AsyncClient) -> None:
    async with FakeReplicate(token=TOKEN, required_fields=("prompt", "seed")) as fake:
        assert isinstance(fake, FakeReplicate)
        with pytest.raises(ProviderError) as info:
            await make_adapter(fake, http).generate(GenerationRequest(Category.IMAGE), FLUX, ctx())
        assert info.value.kind is ErrorKind.BAD_REQUEST and info.value.status == 422
        assert "input.prompt: prompt is required" in info.value.message
        assert "input.seed: seed is required" in info.value.message


async def test_wrong_token_and_missing_token(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http, token="r8_wrong").generate(IMAGE, FLUX, ctx())
    assert info.value.kind is ErrorKind.AUTH and info.value.status == 401
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http, token=None).generate(IMAGE, FLUX, ctx())
    assert info.value.kind is ErrorKind.AUTH and len(fake.calls) == 1  # no call made without a key


@pytest.mark.parametrize("body", [
    "not json at all",
    {"detail": "no id here"},
    {"id": "x1", "status": "exploded"},
    {"id": "x2", "status": "succeeded", "output": None},
    {"id": "x3", "status": "succeeded", "output": {"nested": 1}},
    {"id": "x4", "status": "succeeded", "output": ["ftp://nope/file.png"]},
])
async def test_garbage_is_invalid_response(fake: FakeReplicate, http: httpx.AsyncClient, body: Any) -> None:
    fake.fail_next(201, body)
    with pytest.raises(ProviderError) as info:
        await make_adapter(fake, http).generate(IMAGE, FLUX, ctx())
    assert info.value.kind is ErrorKind.INVALID_RESPONSE


async def test_the_token_never_reaches_the_log(fake: FakeReplicate, http: httpx.AsyncClient) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    try:
        adapter = make_adapter(fake, http)
        await adapter.generate(IMAGE, FLUX, ctx())
        fake.fail_next(402, {"title": "Insufficient credit", "detail": "top up", "status": 402})
        with pytest.raises(ProviderError):
            await adapter.generate(IMAGE, FLUX, ctx())
        await adapter.cancel("missing")
    finally:
        logger.remove(sink)
    assert lines and not any(TOKEN in line for line in lines)


# error() needs no network: one adapter over a client that is never used
OFFLINE = ReplicateAdapter(adapter_config("replicate", "https://api.replicate.com/v1", TOKEN, "REPLICATE_API_TOKEN"),
                           httpx.AsyncClient())


@given(seconds=st.integers(min_value=0, max_value=100_000), approx=st.booleans())
def test_throttle_wait_is_read_from_the_detail(seconds: int, approx: bool) -> None:
    detail = f"Request was throttled. Your rate limit resets in {'~' if approx else ''}{seconds}s."
    error = OFFLINE.error(answer(429, {"detail": detail, "status": 429}, "https://api.replicate.com/v1/predictions"))
    assert error.kind is ErrorKind.RATE_LIMITED and error.retry_after_s == float(seconds)
