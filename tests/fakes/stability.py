"""A loopback Stability AI v2beta: generate, the edits, the upscales and the async results URL.

It insists on what the real API insists on: a Bearer key, multipart/form-data bodies (even without files),
an `Accept` of `image/*` or `application/json`, and each endpoint's required fields. Errors come in the
real `{"id", "name", "errors": [...]}` shape.

    fake.content_filtered = True   # 200 with finish-reason CONTENT_FILTERED (a blurred image)
    fake.json_mode = True          # answer JSON {"image": b64, ...} whatever Accept asked for
    fake.creative_polls = 3        # the results URL answers 202 this many times before the image
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from aiohttp import web

from tests.fakes.base import Call, FakeServer, respond

# Real 1x1 images (valid files, decodable by any image library), one per output format.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478da63382127070002b6"
    "01050a5ba6060000000049454e44ae426082")
JPEG_1X1 = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f14"
    "1d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffdb0043010909090c0b0c180d"
    "0d1832211c21323232323232323232323232323232323232323232323232323232323232323232323232323232323232323232"
    "3232323232ffc00011080001000103012200021101031101ffc4001500010100000000000000000000000000000006ffc40014"
    "100100000000000000000000000000000000ffc4001501010100000000000000000000000000000507ffc40014110100000000"
    "000000000000000000000000ffda000c03010002110311003f0090002a98ffd9")
WEBP_1X1 = bytes.fromhex("524946461e000000574542505650384c110000002f0000000007508f22d7a3ff8188e87f0000")
IMAGES = {"png": (PNG_1X1, "image/png"), "jpeg": (JPEG_1X1, "image/jpeg"), "webp": (WEBP_1X1, "image/webp")}

SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium")
# endpoint -> (required fields, required files)
_REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "generate/ultra": (("prompt",), ()),
    "generate/core": (("prompt",), ()),
    "generate/sd3": (("prompt",), ()),
    "edit/erase": ((), ("image",)),
    "edit/inpaint": (("prompt",), ("image",)),
    "edit/outpaint": ((), ("image",)),
    "edit/search-and-replace": (("prompt", "search_prompt"), ("image",)),
    "edit/remove-background": ((), ("image",)),
    "upscale/fast": ((), ("image",)),
    "upscale/conservative": (("prompt",), ("image",)),
    "upscale/creative": (("prompt",), ("image",)),
}


def stability_error(status: int, name: str, *errors: str) -> web.Response:
    """The real error body: a request id, a snake_case name and a list of human messages."""
    return respond(status, {"id": secrets.token_hex(16), "name": name, "errors": list(errors)})


def unauthorized() -> web.Response:
    return stability_error(401, "unauthorized", "authorization: invalid or missing")


def payment_required() -> web.Response:
    return stability_error(402, "payment_required",
                           "You lack sufficient credits to make this request. Please purchase more credits.")


def content_moderation() -> web.Response:
    return stability_error(403, "content_moderation",
                           "Your request was flagged by our content moderation system, as a result your request "
                           "was denied and you were not charged.")


class FakeStability(FakeServer):
    def __init__(self, api_key: str = "sk-test-stability", *, content_filtered: bool = False,
                 json_mode: bool = False, creative_polls: int = 2) -> None:
        super().__init__()
        self.api_key = api_key
        self.content_filtered = content_filtered
        self.json_mode = json_mode
        self.creative_polls = creative_polls
        self.jobs: dict[str, int] = {}  # creative upscale id -> in-progress answers still to give
        self.job_formats: dict[str, str] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2beta/stable-image/{group:generate|edit|upscale}/{op}", self._post)
        app.router.add_get("/v2beta/results/{id}", self._results)

    def posts(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]

    async def _post(self, request: web.Request) -> web.StreamResponse:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return unauthorized()
        endpoint = f"{request.match_info['group']}/{request.match_info['op']}"
        if endpoint not in _REQUIRED:
            return stability_error(404, "not_found", f"{request.path} does not exist")
        if "multipart/form-data" not in request.headers.get("Content-Type", ""):
            return stability_error(400, "bad_request", "content-type: must be multipart/form-data")
        problem = self._invalid(endpoint, call.form)
        if problem:
            return stability_error(400, "bad_request", problem)
        output_format = str(call.form.get("output_format", "png"))
        if endpoint == "upscale/creative":
            job_id = secrets.token_hex(32)
            self.jobs[job_id] = self.creative_polls
            self.job_formats[job_id] = output_format
            return respond(200, {"id": job_id})
        return self._image(request, output_format)

    def _invalid(self, endpoint: str, form: dict[str, Any]) -> str | None:
        fields, files = _REQUIRED[endpoint]
        for name in fields:
            if not isinstance(form.get(name), str) or not form[name].strip():
                return f"{name}: is required"
        for name in files:
            if not isinstance(form.get(name), bytes):
                return f"{name}: is required and must be a file"
        if form.get("output_format", "png") not in IMAGES:
            return "output_format: must be one of png, jpeg, webp"
        if endpoint == "generate/sd3" and form.get("model", SD3_MODELS[0]) not in SD3_MODELS:
            return f"model: must be one of {', '.join(SD3_MODELS)}"
        if endpoint == "edit/outpaint":
            sides = [str(form.get(s, "0")) for s in ("left", "right", "up", "down")]
            if not all(v.isdigit() for v in sides):
                return "left, right, up, down: must be integers"
            if not any(int(v) for v in sides):
                return "at least one of left, right, up, down must be greater than 0"
        return None

    async def _results(self, request: web.Request) -> web.StreamResponse:
        _call, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return unauthorized()
        job_id = request.match_info["id"]
        if job_id not in self.jobs:
            return stability_error(404, "not_found", f"generation {job_id} not found (results are kept 24 hours)")
        if self.jobs[job_id] > 0:
            self.jobs[job_id] -= 1
            return respond(202, {"id": job_id, "status": "in-progress"})
        return self._image(request, self.job_formats[job_id])

    def _image(self, request: web.Request, output_format: str) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        if not self.json_mode and accept not in ("image/*", "application/json"):
            return stability_error(400, "bad_request", "accept: must be image/* or application/json")
        data, mime = IMAGES[output_format]
        finish = "CONTENT_FILTERED" if self.content_filtered else "SUCCESS"
        seed = str(secrets.randbelow(4_294_967_295))
        if self.json_mode or accept == "application/json":
            return respond(200, {"image": base64.b64encode(data).decode(), "finish_reason": finish, "seed": int(seed)})
        return web.Response(status=200, body=data, headers={"Content-Type": mime, "finish-reason": finish,
                                                            "seed": seed})
