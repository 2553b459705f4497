"""A loopback Replicate: predictions that advance one state per poll, files served from itself.

    fake = FakeReplicate(token="r8_test", polls_until_done=2, output_style="list")
    fake.prefer_wait_completes = True   # `Prefer: wait` answers `succeeded` at once
    fake.fail_with = "NSFW content detected"   # the prediction ends `failed` (HTTP 200) with this error
    fake.creates / fake.polls            # how many predictions were created / polled
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.fakes.base import Call, FakeServer, respond

OutputStyle = Literal["list", "string", "tokens"]
FILE_BYTES = {"png": b"\x89PNG\r\n\x1a\nfake-png", "mp4": b"\x00\x00\x00\x18ftypmp42fake", "mp3": b"ID3fake-mp3",
              "wav": b"RIFF\x00\x00\x00\x00WAVEfake"}
TOKENS = ["Hello", ",", " world", "!"]


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    status: str = "starting"
    polls: int = 0
    output: Any = None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class FakeReplicate(FakeServer):
    def __init__(self, token: str = "r8_test", *, polls_until_done: int = 2, output_style: OutputStyle = "list",
                 output_ext: str = "png", num_outputs: int = 1, prefer_wait_completes: bool = False,
                 fail_with: str | None = None, required_fields: tuple[str, ...] = ("prompt",),
                 predict_time: float = 1.25) -> None:
        super().__init__()
        self.token = token
        self.polls_until_done = polls_until_done
        self.output_style: OutputStyle = output_style
        self.output_ext = output_ext
        self.num_outputs = num_outputs
        self.prefer_wait_completes = prefer_wait_completes
        self.fail_with = fail_with
        self.required_fields = required_fields
        self.predict_time = predict_time
        self.predictions: dict[str, Prediction] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self._create_official)
        app.router.add_post("/v1/predictions", self._create_version)
        app.router.add_get("/v1/predictions/{id}", self._get)
        app.router.add_post("/v1/predictions/{id}/cancel", self._cancel)
        app.router.add_get("/files/{name}", self._file)

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def creates(self) -> int:
        return sum(1 for c in self.calls if c.method == "POST" and c.path.endswith("/predictions"))

    @property
    def polls(self) -> int:
        return sum(1 for c in self.calls if c.method == "GET" and c.path.startswith("/v1/predictions/"))

    # --- handlers ----------------------------------------------------------------------------
    async def _create_official(self, request: web.Request) -> web.StreamResponse:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        return await self._create(request, model, version_required=False)

    async def _create_version(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, "", version_required=True)

    async def _create(self, request: web.Request, model: str, *, version_required: bool) -> web.StreamResponse:
        call, answer = await self._gate(request)
        if answer is not None:
            return answer
        body = call.json if isinstance(call.json, dict) else {}
        problems = self._invalid(body, version_required)
        if problems:
            return respond(422, {"title": "Input validation failed", "status": 422,
                                 "detail": "- " + "\n- ".join(p["description"] for p in problems),
                                 "invalid_fields": problems})
        prediction = Prediction(uuid.uuid4().hex[:26], model or "owner/versioned", str(body.get("version", "")),
                                body["input"])
        self.predictions[prediction.id] = prediction
        if self.prefer_wait_completes and "wait" in request.headers.get("Prefer", ""):
            self._finish(prediction)
        return respond(201, self._wire(prediction))

    async def _get(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._open(request)
        if not isinstance(prediction, Prediction):
            return prediction  # scripted, 401 or 404
        if prediction.status in ("starting", "processing"):
            prediction.polls += 1
            if prediction.polls >= self.polls_until_done:
                self._finish(prediction)
            else:
                prediction.status = "processing"
        return respond(200, self._wire(prediction))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        prediction = await self._open(request)
        if not isinstance(prediction, Prediction):
            return prediction  # scripted, 401 or 404
        if prediction.status in ("starting", "processing"):
            prediction.status = "canceled"
        return respond(200, self._wire(prediction))

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        ext = request.match_info["name"].rsplit(".", 1)[-1]
        return web.Response(body=FILE_BYTES.get(ext, b"fake"), content_type="application/octet-stream")

    # --- behaviour ---------------------------------------------------------------------------
    async def _gate(self, request: web.Request) -> tuple[Call, web.StreamResponse | None]:
        """Record the call; a scripted answer, or a 401 for a wrong token, is the answer."""
        call, scripted = await self.pre(request)
        if scripted is not None:
            return call, scripted
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return call, respond(401, {"title": "Unauthenticated", "status": 401,
                                       "detail": "You did not pass a valid authentication token"})
        return call, None

    async def _open(self, request: web.Request) -> Prediction | web.StreamResponse:
        """The prediction a GET or cancel names, or the answer given instead (scripted, 401, 404)."""
        _call, answer = await self._gate(request)
        if answer is not None:
            return answer
        prediction = self.predictions.get(request.match_info["id"])
        if prediction is None:
            return respond(404, {"detail": "The requested resource could not be found.", "status": 404})
        return prediction

    def _invalid(self, body: dict[str, Any], version_required: bool) -> list[dict[str, str]]:
        problems = []
        if version_required and not isinstance(body.get("version"), str):
            problems.append({"type": "required", "field": "version", "description": "version is required"})
        inputs = body.get("input")
        if not isinstance(inputs, dict):
            return [*problems, {"type": "required", "field": "input", "description": "input is required"}]
        for name in self.required_fields:
            if not inputs.get(name):
                problems.append({"type": "required", "field": f"input.{name}",
                                 "description": f"{name} is required"})
        return problems

    def _finish(self, prediction: Prediction) -> None:
        prediction.metrics = {"predict_time": self.predict_time}
        if self.fail_with is not None:
            prediction.status, prediction.error = "failed", self.fail_with
            return
        prediction.status = "succeeded"
        urls = [f"{self.url}/files/{prediction.id}-{i}.{self.output_ext}" for i in range(self.num_outputs)]
        if self.output_style == "list":
            prediction.output = urls
        elif self.output_style == "string":
            prediction.output = urls[0]
        else:
            prediction.output = list(TOKENS)
            prediction.metrics.update(input_token_count=7, output_token_count=len(TOKENS))

    def _wire(self, p: Prediction) -> dict[str, Any]:
        get = f"{self.base_url}/predictions/{p.id}"
        return {
            "id": p.id, "model": p.model, "version": p.version, "input": p.input, "status": p.status,
            "output": p.output, "error": p.error, "logs": "", "created_at": "2026-11-22T03:00:00.000Z",
            "started_at": None if p.status == "starting" else "2026-11-22T03:00:01.000Z",
            "completed_at": "2026-11-22T03:00:02.000Z" if p.metrics else None, "metrics": p.metrics,
            "urls": {"get": get, "cancel": f"{get}/cancel", "stream": f"{self.url}/stream/{p.id}"},
        }
