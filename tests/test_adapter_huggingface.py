"""HuggingFaceAdapter against the loopback FakeHuggingFace: request shape, images, loading, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.adapters.huggingface import HuggingFaceAdapter, hf_parameters
from providers.errors import ErrorKind
from providers.types import Category, GenerationRequest
from tests.adapter_support import adapter_config, answer, failure, fake_fixture
from tests.adapter_support import call_context as ctx
from tests.fakes.huggingface import FakeHuggingFace, credits_exceeded_body, loading_body
from tests.fakes.stability import JPEG_1X1, PNG_1X1

MODEL = "black-forest-labs/FLUX.1-schnell"


def make_adapter(base_url: str, http: httpx.AsyncClient, key: str = "hf_test_token",
                 **options: Any) -> HuggingFaceAdapter:
    config = adapter_config("huggingface", base_url, key, "HF_TOKEN", {Category.IMAGE: MODEL}, options)
    return HuggingFaceAdapter(config, http)


fake = fake_fixture(FakeHuggingFace)


def image(prompt: str = "a lighthouse at dusk", **options: Any) -> GenerationRequest:
    return GenerationRequest(Category.IMAGE, prompt=prompt, options=options)


# --- requests and answers ------------------------------------------------------------------------

async def test_request_shape_and_image_answer(fake: FakeHuggingFace, http: httpx.AsyncClient) -> None:
    result = await make_adapter(fake.url, http).generate(image(), MODEL, ctx())

    (call,) = fake.calls
    assert (call.method, call.path) == ("POST", f"/hf-inference/models/{MODEL}")  # the slash stays a slash
    assert call.headers["Authorization"] == "Bearer hf_test_token"
    assert call.headers["Content-Type"] == "application/json"
    assert call.json == {"inputs": "a lighthouse at dusk"}  # no options: no `parameters`
    (media,) = result.media
    assert (media.mime, media.data) == ("image/jpeg", JPEG_1X1)
    assert result.usage.images == 1 and result.model == MODEL


async def test_only_known_parameters_are_sent(fake: FakeHuggingFace, http: httpx.AsyncClient) -> None:
    adapter = make_adapter(fake.url, http, parameters={"num_inference_steps": 4, "guidance_scale": 1.5})
    request = image(size="768x512", seed=7, negative_prompt="fog", aspect_ratio="3:2", voice_id="x",
                    guidance_scale=3.0)
    await adapter.generate(request, MODEL, ctx())
    assert fake.calls[0].json["parameters"] == {"width": 768, "height": 512, "seed": 7, "negative_prompt": "fog",
                                                "num_inference_steps": 4, "guidance_scale": 3.0}


async def test_mime_follows_the_content_type(fake: FakeHuggingFace, http: httpx.AsyncClient) -> None:
    fake.image_format = "png"
    result = await make_adapter(fake.url, http).generate(image(), MODEL, ctx())
    assert (result.media[0].mime, result.media[0].data) == ("image/png", PNG_1X1)


async def test_unlabelled_but_real_image_is_accepted(fake: FakeHuggingFace, http: httpx.AsyncClient) -> None:
    fake.fail_next(200, PNG_1X1, {"Content-Type": "application/octet-stream"})
    result = await make_adapter(fake.url, http).generate(image(), MODEL, ctx())
    assert result.media[0].mime == "image/png"


@pytest.mark.parametrize("request_", [image("  "), GenerationRequest(Category.AUDIO, prompt="hello")])
async def test_unusable_requests_fail_without_a_call(fake: FakeHuggingFace, http: httpx.AsyncClient,
                                                     request_: GenerationRequest) -> None:
    err = await failure(make_adapter(fake.url, http).generate(request_, MODEL, ctx()))
    assert err.kind is ErrorKind.BAD_REQUEST and fake.calls == []


# --- the loading trap ------------------------------------------------------------------------------

async def test_loading_model_is_unavailable_for_its_estimated_time(fake: FakeHuggingFace,
                                                                   http: httpx.AsyncClient) -> None:
    fake.loading_times, fake.estimated_time = 1, 37.5
    adapter = make_adapter(fake.url, http)
    err = await failure(adapter.generate(image(), MODEL, ctx()))
    assert (err.kind, err.status, err.retry_after_s) == (ErrorKind.UNAVAILABLE, 503, 37.5)
    assert "loading" in err.message
    result = await adapter.generate(image(), MODEL, ctx())  # loaded now
    assert result.media[0].data == JPEG_1X1 and len(fake.calls) == 2


# --- errors ----------------------------------------------------------------------------------------

ERROR_CASES = [
    (402, credits_exceeded_body(), {}, ErrorKind.QUOTA_EXHAUSTED, None),
    (429, {"error": "Rate limit reached. You reached free usage limit (reset hourly)."}, {"Retry-After": "12"},
     ErrorKind.RATE_LIMITED, 12.0),
    (429, {"error": "Too many requests"}, {}, ErrorKind.RATE_LIMITED, None),
    (403, {"error": "This authentication method does not have sufficient permissions to call Inference "
                    "Providers on behalf of user x"}, {}, ErrorKind.AUTH, None),
    (403, credits_exceeded_body(), {}, ErrorKind.QUOTA_EXHAUSTED, None),
    (400, {"error": "Input validation error: `inputs` must be a non-empty string"}, {}, ErrorKind.BAD_REQUEST, None),
    (422, {"error": ["Input should be a valid integer: parameters.width"]}, {}, ErrorKind.BAD_REQUEST, None),
    (404, {"error": "Model org/none does not exist"}, {}, ErrorKind.UNAVAILABLE, None),
    (500, {"error": "CUDA out of memory"}, {}, ErrorKind.UNAVAILABLE, None),
    (502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"}, ErrorKind.UNAVAILABLE, None),
    (503, {"error": "Service Unavailable"}, {"Retry-After": "5"}, ErrorKind.UNAVAILABLE, 5.0),
    (504, b"", {}, ErrorKind.UNAVAILABLE, None),
]


@pytest.mark.parametrize(("status", "payload", "headers", "kind", "retry"), ERROR_CASES)
async def test_error_shapes_map_to_kinds(fake: FakeHuggingFace, http: httpx.AsyncClient, status: int,
                                         payload: Any, headers: dict[str, str], kind: ErrorKind,
                                         retry: float | None) -> None:
    fake.fail_next(status, payload, headers)
    err = await failure(make_adapter(fake.url, http).generate(image(), MODEL, ctx()))
    assert (err.kind, err.status, err.retry_after_s, err.provider) == (kind, status, retry, "huggingface")


async def test_real_failures_of_the_fake(fake: FakeHuggingFace, http: httpx.AsyncClient) -> None:
    wrong = await failure(make_adapter(fake.url, http, key="hf_wrong").generate(image(), MODEL, ctx()))
    assert wrong.kind is ErrorKind.AUTH and "hf_wrong" not in str(wrong)
    # a provider default the model does not know: the real service rejects it as a bad request
    odd = make_adapter(fake.url, http, parameters={"strength": 0.3})
    assert (await failure(odd.generate(image(), MODEL, ctx()))).kind is ErrorKind.BAD_REQUEST
    fake.models = {"other/model"}
    missing = await failure(make_adapter(fake.url, http).generate(image(), MODEL, ctx()))
    assert (missing.kind, missing.status) == (ErrorKind.UNAVAILABLE, 404)


@pytest.mark.parametrize(("payload", "kind", "retry"), [
    (loading_body(MODEL, 12.0), ErrorKind.UNAVAILABLE, 12.0),
    (credits_exceeded_body(), ErrorKind.QUOTA_EXHAUSTED, None),
    ({"error": "Rate limit reached"}, ErrorKind.RATE_LIMITED, None),
    ({"error": "Something went wrong in the pipeline"}, ErrorKind.UNAVAILABLE, None),
    ({"error": ["NSFW content detected in the output"]}, ErrorKind.CONTENT_POLICY, None),
])
async def test_error_body_on_200_is_classified(fake: FakeHuggingFace, http: httpx.AsyncClient, payload: Any,
                                               kind: ErrorKind, retry: float | None) -> None:
    fake.fail_next(200, payload)
    err = await failure(make_adapter(fake.url, http).generate(image(), MODEL, ctx()))
    assert (err.kind, err.status, err.retry_after_s) == (kind, 200, retry)


@pytest.mark.parametrize(("payload", "headers"), [
    ({"generated": "nothing"}, {}),
    ([{"blob": "x"}], {}),
    (b"", {"Content-Type": "image/jpeg"}),
    (b"<html>maintenance</html>", {"Content-Type": "image/jpeg"}),
    (b"plain words", {"Content-Type": "text/plain"}),
    (b"\x00\x01\x02garbage", {"Content-Type": "application/octet-stream"}),
    (b"{not json", {"Content-Type": "application/json"}),
])
async def test_garbage_bodies_are_invalid_response(fake: FakeHuggingFace, http: httpx.AsyncClient,
                                                   payload: Any, headers: dict[str, str]) -> None:
    fake.fail_next(200, payload, headers)
    err = await failure(make_adapter(fake.url, http).generate(image(), MODEL, ctx()))
    assert err.kind is ErrorKind.INVALID_RESPONSE


async def test_hanging_server_is_unavailable(fake: FakeHuggingFace, http: httpx.AsyncClient) -> None:
    fake.hang = True
    err = await failure(make_adapter(fake.url, http).generate(image(), MODEL, ctx(timeout_s=0.2)))
    assert err.kind is ErrorKind.UNAVAILABLE


# --- general rules -----------------------------------------------------------------------------------

OFFLINE = make_adapter("http://hf.test", httpx.AsyncClient())  # only its error() is used


@given(st.floats(0, 86_400, allow_nan=False), st.text(max_size=30))
def test_estimated_time_becomes_the_retry_wait(estimated: float, model: str) -> None:
    err = OFFLINE.error(answer(503, loading_body(model, estimated), "http://hf.test/x"))
    assert err.kind is ErrorKind.UNAVAILABLE and err.retry_after_s == estimated


@given(st.dictionaries(st.text(max_size=12), st.integers() | st.text(max_size=8), max_size=6),
       st.integers(1, 4096), st.integers(1, 4096))
def test_parameters_never_carry_unknown_keys(options: dict[str, Any], width: int, height: int) -> None:
    params = hf_parameters({**options, "size": f"{width}x{height}"})
    assert set(params) <= {"negative_prompt", "width", "height", "num_inference_steps", "guidance_scale",
                           "scheduler", "seed"}
    if "width" not in options and "height" not in options:
        assert (params["width"], params["height"]) == (width, height)
