"""StabilityAdapter against the loopback FakeStability: request shapes, answers, async upscale, errors."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.adapters.stability import StabilityAdapter, endpoint_for, sniff_image_mime
from providers.errors import ErrorKind
from providers.types import Category, EditOp, GenerationRequest
from tests.adapter_support import adapter_config, answer, failure, fake_fixture
from tests.adapter_support import call_context as ctx
from tests.fakes.stability import JPEG_1X1, PNG_1X1, WEBP_1X1, FakeStability

SOURCE = PNG_1X1
MASK = b"\x89PNG\r\n\x1a\n-mask"


def make_adapter(base_url: str, http: httpx.AsyncClient, key: str = "sk-test-stability",
                 **options: Any) -> StabilityAdapter:
    config = adapter_config("stability", base_url, key, "STABILITY_API_KEY", {Category.IMAGE: "core"}, options)
    return StabilityAdapter(config, http)


fake = fake_fixture(FakeStability)


def image(prompt: str = "a red fox", **options: Any) -> GenerationRequest:
    return GenerationRequest(Category.IMAGE, prompt=prompt, options=options)


def edit(op: EditOp, prompt: str = "", mask: bytes | None = None, search: str | None = None,
         **options: Any) -> GenerationRequest:
    return GenerationRequest(Category.IMAGE_EDIT, prompt=prompt, image=SOURCE, mask=mask, edit_op=op,
                             search_prompt=search, options=options)


# --- generate ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "path", "model_field"), [
    ("core", "/v2beta/stable-image/generate/core", None),
    ("ultra", "/v2beta/stable-image/generate/ultra", None),
    ("stable-image-ultra", "/v2beta/stable-image/generate/ultra", None),
    ("sd3.5-large", "/v2beta/stable-image/generate/sd3", "sd3.5-large"),
    ("sd3.5-medium", "/v2beta/stable-image/generate/sd3", "sd3.5-medium"),
])
async def test_generate_endpoint_and_fields(fake: FakeStability, http: httpx.AsyncClient, model: str,
                                            path: str, model_field: str | None) -> None:
    request = image(negative_prompt="blurry", aspect_ratio="16:9", seed=42, voice_id="ignored")
    result = await make_adapter(fake.url, http).generate(request, model, ctx())

    (call,) = fake.calls
    assert (call.method, call.path) == ("POST", path)
    assert call.headers["Authorization"] == "Bearer sk-test-stability"
    assert call.headers["Accept"] == "image/*"
    assert call.headers["Content-Type"].startswith("multipart/form-data; boundary=")  # even with no file
    assert call.form == {"prompt": "a red fox", "negative_prompt": "blurry", "aspect_ratio": "16:9",
                         "seed": "42", "output_format": "png", **({"model": model_field} if model_field else {})}
    assert result.media[0].mime == "image/png" and result.media[0].data == PNG_1X1
    assert result.usage.images == 1 and result.model == model and result.job_id is None


@pytest.mark.parametrize(("fmt", "data", "mime"), [("jpeg", JPEG_1X1, "image/jpeg"), ("webp", WEBP_1X1, "image/webp")])
async def test_output_format_decides_the_media_type(fake: FakeStability, http: httpx.AsyncClient, fmt: str,
                                                    data: bytes, mime: str) -> None:
    result = await make_adapter(fake.url, http).generate(image(output_format=fmt), "core", ctx())
    assert fake.calls[0].form["output_format"] == fmt
    assert (result.media[0].mime, result.media[0].data) == (mime, data)


async def test_json_accept_mode_is_asked_for_and_decoded(fake: FakeStability, http: httpx.AsyncClient) -> None:
    result = await make_adapter(fake.url, http, accept="json").generate(image(), "core", ctx())
    assert fake.calls[0].headers["Accept"] == "application/json"
    assert result.media[0].data == PNG_1X1


async def test_json_answer_is_parsed_even_when_bytes_were_asked(fake: FakeStability,
                                                                http: httpx.AsyncClient) -> None:
    fake.json_mode = True
    result = await make_adapter(fake.url, http).generate(image(), "sd3.5-large", ctx())
    assert fake.calls[0].headers["Accept"] == "image/*"
    assert result.media[0].data == PNG_1X1


@pytest.mark.parametrize("json_mode", [False, True])
async def test_content_filtered_on_200_is_content_policy(fake: FakeStability, http: httpx.AsyncClient,
                                                         json_mode: bool) -> None:
    fake.content_filtered, fake.json_mode = True, json_mode
    err = await failure(make_adapter(fake.url, http).generate(image(), "core", ctx()))
    assert err.kind is ErrorKind.CONTENT_POLICY and err.status == 200


async def test_empty_prompt_is_refused_before_any_call(fake: FakeStability, http: httpx.AsyncClient) -> None:
    err = await failure(make_adapter(fake.url, http).generate(image(prompt="  "), "core", ctx()))
    assert err.kind is ErrorKind.BAD_REQUEST and fake.calls == []


# --- edits ---------------------------------------------------------------------------------------

EDIT_CASES = [
    (edit(EditOp.ERASE, mask=MASK), "edit/erase", {}, True),
    (edit(EditOp.INPAINT, "a cat", mask=MASK), "edit/inpaint", {"prompt": "a cat"}, True),
    (edit(EditOp.OUTPAINT, "sea", left=100, down=50), "edit/outpaint",
     {"left": "100", "down": "50", "prompt": "sea"}, False),
    (edit(EditOp.OUTPAINT), "edit/outpaint", {"left": "256", "right": "256", "up": "256", "down": "256"}, False),
    (edit(EditOp.SEARCH_REPLACE, "a dog", search="cat"), "edit/search-and-replace",
     {"prompt": "a dog", "search_prompt": "cat"}, False),
    (edit(EditOp.SEARCH_REPLACE, "a dog", search_prompt="cat"), "edit/search-and-replace",
     {"prompt": "a dog", "search_prompt": "cat"}, False),
    (edit(EditOp.REMOVE_BACKGROUND, "ignored"), "edit/remove-background", {}, False),
    (edit(EditOp.UPSCALE), "upscale/fast", {}, False),
    (edit(EditOp.UPSCALE, "crisp", upscale="conservative"), "upscale/conservative", {"prompt": "crisp"}, False),
    (edit(EditOp.UPSCALE, upscale="conservative"), "upscale/conservative",
     {"prompt": "high quality, sharp details"}, False),
]


@pytest.mark.parametrize(("request_", "endpoint", "fields", "with_mask"), EDIT_CASES)
async def test_edit_endpoints_receive_their_fields(fake: FakeStability, http: httpx.AsyncClient,
                                                   request_: GenerationRequest, endpoint: str,
                                                   fields: dict[str, str], with_mask: bool) -> None:
    result = await make_adapter(fake.url, http).generate(request_, "stable-image-edit", ctx())

    (call,) = fake.calls
    assert call.path == f"/v2beta/stable-image/{endpoint}"
    assert call.headers["Accept"] == "image/*"
    assert call.form.pop("image") == SOURCE  # sent as a file part
    assert (call.form.pop("mask", None) == MASK) is with_mask
    assert call.form == {**fields, "output_format": "png"}
    assert result.media[0].data == PNG_1X1 and result.usage.images == 1


async def test_upscale_flavour_falls_back_to_the_provider_option(fake: FakeStability,
                                                                 http: httpx.AsyncClient) -> None:
    adapter = make_adapter(fake.url, http, upscale="conservative")
    await adapter.generate(edit(EditOp.UPSCALE, "x"), "m", ctx())
    assert fake.calls[0].path.endswith("/upscale/conservative")


@pytest.mark.parametrize("request_", [
    edit(EditOp.INPAINT),  # no prompt
    edit(EditOp.SEARCH_REPLACE, "a dog"),  # no search prompt
    edit(EditOp.UPSCALE, upscale="huge"),
    edit(EditOp.OUTPAINT, left="wide"),
    GenerationRequest(Category.IMAGE_EDIT, prompt="x", edit_op=EditOp.ERASE),  # no image
    GenerationRequest(Category.IMAGE_EDIT, prompt="x", image=SOURCE),  # no op
    GenerationRequest(Category.TEXT, prompt="hi"),
])
async def test_unusable_requests_are_bad_request_without_a_call(fake: FakeStability, http: httpx.AsyncClient,
                                                                request_: GenerationRequest) -> None:
    err = await failure(make_adapter(fake.url, http).generate(request_, "m", ctx()))
    assert err.kind is ErrorKind.BAD_REQUEST and fake.calls == []


# --- creative upscale (async) and resume ----------------------------------------------------------

async def test_creative_upscale_reports_the_job_before_it_completes(fake: FakeStability,
                                                                    http: httpx.AsyncClient) -> None:
    fake.creative_polls = 3
    seen: list[tuple[str, int]] = []
    on_job = lambda job_id: seen.append((job_id, len(fake.calls_to("/results/"))))  # noqa: E731
    result = await make_adapter(fake.url, http).generate(
        edit(EditOp.UPSCALE, "", upscale="creative"), "m", ctx(on_job_id=on_job))

    (post,) = fake.posts()
    assert post.path == "/v2beta/stable-image/upscale/creative"
    assert post.form["prompt"] == "high quality, sharp details" and post.form["image"] == SOURCE
    assert seen == [(result.job_id, 0)]  # reported before the first poll
    polls = fake.calls_to(f"/v2beta/results/{result.job_id}")
    assert len(polls) == 4 and all(c.method == "GET" and c.headers["Accept"] == "image/*" for c in polls)
    assert result.media[0].data == PNG_1X1 and result.usage.images == 1


async def test_resume_polls_the_same_job_without_posting_again(fake: FakeStability,
                                                               http: httpx.AsyncClient) -> None:
    fake.creative_polls = 3
    adapter = make_adapter(fake.url, http)
    request = edit(EditOp.UPSCALE, "sharp", upscale="creative")
    # The deadline passes after one poll: the error carries the id so the job can be picked up again.
    err = await failure(adapter.generate(request, "m", ctx(max_poll_s=0.0)))
    assert err.kind is ErrorKind.UNAVAILABLE and err.job_id is not None

    result = await make_adapter(fake.url, http).resume(err.job_id, request, "m", ctx())
    assert result.job_id == err.job_id and result.media[0].data == PNG_1X1
    assert len(fake.posts()) == 1 and len(fake.calls_to("/results/")) == 4


async def test_resume_of_an_unknown_job_is_not_found(fake: FakeStability, http: httpx.AsyncClient) -> None:
    err = await failure(make_adapter(fake.url, http).resume("f" * 64, edit(EditOp.UPSCALE), "m", ctx()))
    assert err.kind is ErrorKind.BAD_REQUEST and err.status == 404 and fake.posts() == []


async def test_filtered_creative_result_is_content_policy_with_the_job(fake: FakeStability,
                                                                       http: httpx.AsyncClient) -> None:
    fake.content_filtered, fake.json_mode = True, True
    err = await failure(make_adapter(fake.url, http).generate(edit(EditOp.UPSCALE, "x", upscale="creative"),
                                                                "m", ctx()))
    assert err.kind is ErrorKind.CONTENT_POLICY and err.job_id in fake.jobs


async def test_creative_answer_without_an_id_is_invalid(fake: FakeStability, http: httpx.AsyncClient) -> None:
    fake.fail_next(200, {"status": "ok"})
    err = await failure(make_adapter(fake.url, http).generate(edit(EditOp.UPSCALE, "x", upscale="creative"),
                                                                "m", ctx()))
    assert err.kind is ErrorKind.INVALID_RESPONSE and fake.calls_to("/results/") == []


# --- errors ----------------------------------------------------------------------------------------

def body(name: str, *errors: str) -> dict[str, Any]:
    return {"id": "a1b2", "name": name, "errors": list(errors)}


ERROR_CASES = [
    (400, body("bad_request", "prompt: is required"), {}, ErrorKind.BAD_REQUEST, None),
    (401, body("unauthorized", "authorization: invalid or missing"), {}, ErrorKind.AUTH, None),
    (402, body("payment_required", "You lack sufficient credits to make this request."), {},
     ErrorKind.QUOTA_EXHAUSTED, None),
    (403, body("content_moderation", "Your request was flagged by our content moderation system"), {},
     ErrorKind.CONTENT_POLICY, None),  # the trap: Stability's 403 is moderation, not auth
    (403, body("forbidden", "denied"), {}, ErrorKind.CONTENT_POLICY, None),
    (404, body("not_found", "not found"), {}, ErrorKind.BAD_REQUEST, None),
    (413, body("payload_too_large", "body: payloads cannot be larger than 10MiB in size"), {},
     ErrorKind.BAD_REQUEST, None),
    (422, body("invalid_language", "English is the only supported language"), {}, ErrorKind.BAD_REQUEST, None),
    (429, body("rate_limit_exceeded", "You have exceeded the rate limit"), {}, ErrorKind.RATE_LIMITED, 60.0),
    (429, body("rate_limit_exceeded", "slow down"), {"Retry-After": "7"}, ErrorKind.RATE_LIMITED, 7.0),
    (500, body("internal_error", "An unexpected server error has occurred"), {}, ErrorKind.UNAVAILABLE, None),
    (502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"}, ErrorKind.UNAVAILABLE, None),
    (503, b"", {}, ErrorKind.UNAVAILABLE, None),
]


@pytest.mark.parametrize(("status", "payload", "headers", "kind", "retry"), ERROR_CASES)
async def test_error_shapes_map_to_kinds(fake: FakeStability, http: httpx.AsyncClient, status: int,
                                         payload: Any, headers: dict[str, str], kind: ErrorKind,
                                         retry: float | None) -> None:
    fake.fail_next(status, payload, headers)
    err = await failure(make_adapter(fake.url, http).generate(image(), "core", ctx()))
    assert (err.kind, err.status, err.retry_after_s, err.provider) == (kind, status, retry, "stability")


async def test_wrong_key_gets_the_real_401(fake: FakeStability, http: httpx.AsyncClient) -> None:
    err = await failure(make_adapter(fake.url, http, key="sk-wrong").generate(image(), "core", ctx()))
    assert err.kind is ErrorKind.AUTH and "sk-wrong" not in str(err)


async def test_fake_validation_errors_are_bad_request(fake: FakeStability, http: httpx.AsyncClient) -> None:
    err = await failure(make_adapter(fake.url, http).generate(image(), "sd3-unknown", ctx()))
    assert err.kind is ErrorKind.BAD_REQUEST and "model" in err.message


@pytest.mark.parametrize(("payload", "headers"), [
    (b"", {"Content-Type": "image/png", "finish-reason": "SUCCESS"}),
    (b"<html>oops</html>", {"Content-Type": "text/html"}),
    (b"\x00\x01garbage", {"Content-Type": "image/png"}),
    ({"finish_reason": "SUCCESS"}, {}),
    ({"image": "!!not base64!!", "finish_reason": "SUCCESS"}, {}),
    ({"image": base64.b64encode(b"text").decode(), "finish_reason": "SUCCESS"}, {}),
    (b"{not json", {"Content-Type": "application/json"}),
    (PNG_1X1, {"Content-Type": "image/png", "finish-reason": "ERROR"}),
])
async def test_garbage_bodies_are_invalid_response(fake: FakeStability, http: httpx.AsyncClient,
                                                   payload: Any, headers: dict[str, str]) -> None:
    fake.fail_next(200, payload, headers)
    err = await failure(make_adapter(fake.url, http).generate(image(), "core", ctx()))
    assert err.kind is ErrorKind.INVALID_RESPONSE


async def test_hanging_server_is_unavailable(fake: FakeStability, http: httpx.AsyncClient) -> None:
    fake.hang = True
    err = await failure(make_adapter(fake.url, http).generate(image(), "core", ctx(timeout_s=0.2)))
    assert err.kind is ErrorKind.UNAVAILABLE


# --- general rules -----------------------------------------------------------------------------------

OFFLINE = make_adapter("http://stability.test", httpx.AsyncClient())  # only its error() is used


def synthetic(status: int, payload: Any) -> httpx.Response:
    return answer(status, payload, "http://stability.test/x")


@given(st.text(max_size=30))
def test_every_model_name_maps_to_an_endpoint(model: str) -> None:
    endpoint, field = endpoint_for(model)
    name = model.strip().lower().removeprefix("stable-image-")
    if name in ("ultra", "core"):
        assert (endpoint, field) == (name, None)
    else:
        assert endpoint == "sd3" and field == (None if name == "sd3" else model.strip())


@given(st.integers(400, 599), st.lists(st.text(max_size=40), max_size=3))
def test_a_moderation_name_is_content_policy_whatever_the_status(status: int, errors: list[str]) -> None:
    err = OFFLINE.error(synthetic(status, {"id": "x", "name": "content_moderation", "errors": errors}))
    assert err.kind is ErrorKind.CONTENT_POLICY


@given(st.integers(500, 599), st.sampled_from(["internal_error", "server_error", "", "unknown"]))
def test_server_errors_are_unavailable(status: int, name: str) -> None:
    assert OFFLINE.error(synthetic(status, {"id": "x", "name": name, "errors": []})).kind is ErrorKind.UNAVAILABLE


@given(st.binary(max_size=64))
def test_only_real_image_headers_are_taken_for_images(data: bytes) -> None:
    mime = sniff_image_mime(data)
    assert mime is None or data[:3] in (b"\x89PN", b"\xff\xd8\xff", b"RIF", b"GIF")
    for known in (PNG_1X1, JPEG_1X1, WEBP_1X1):
        assert sniff_image_mime(known + data) is not None
