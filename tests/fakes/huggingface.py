"""A loopback Hugging Face router, hf-inference text-to-image: `POST /hf-inference/models/{model_id}`.

Checks the Bearer token and the JSON body (`inputs` a non-empty string, only known `parameters`), and
answers raw JPEG bytes like the real service. Errors are `{"error": "..."}`.

    fake.loading_times = 2        # the next 2 calls answer 503 "currently loading" with estimated_time
    fake.estimated_time = 20.0
    fake.models = {"org/model"}   # other model ids get 404 (None: every model exists)
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes.base import FakeServer, respond
from tests.fakes.stability import IMAGES

KNOWN_PARAMETERS = {"negative_prompt", "width", "height", "num_inference_steps", "guidance_scale", "scheduler",
                    "seed", "target_size"}


def loading_body(model: str, estimated_time: float) -> dict[str, object]:
    return {"error": f"Model {model} is currently loading", "estimated_time": estimated_time}


def credits_exceeded_body() -> dict[str, str]:
    return {"error": "You have exceeded your monthly included credits for Inference Providers. "
                     "Subscribe to PRO to get 20x more monthly included credits."}


class FakeHuggingFace(FakeServer):
    def __init__(self, api_key: str = "hf_test_token", *, loading_times: int = 0, estimated_time: float = 20.0,
                 models: set[str] | None = None, image_format: str = "jpeg") -> None:
        super().__init__()
        self.api_key = api_key
        self.loading_times = loading_times
        self.estimated_time = estimated_time
        self.models = models
        self.image_format = image_format

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hf-inference/models/{model:.+}", self._infer)

    async def _infer(self, request: web.Request) -> web.StreamResponse:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return respond(401, {"error": "Invalid credentials in Authorization header"})
        model = request.match_info["model"]
        if self.models is not None and model not in self.models:
            return respond(404, {"error": f"Model {model} does not exist"})
        if self.loading_times > 0:
            self.loading_times -= 1
            return respond(503, loading_body(model, self.estimated_time))
        body = call.json if isinstance(call.json, dict) else None
        if body is None or not isinstance(body.get("inputs"), str) or not body["inputs"].strip():
            return respond(400, {"error": "Input validation error: `inputs` must be a non-empty string"})
        params = body.get("parameters") or {}
        unknown = sorted(set(params) - KNOWN_PARAMETERS) if isinstance(params, dict) else ["parameters"]
        if unknown:
            return respond(400, {"error": f"__call__() got an unexpected keyword argument '{unknown[0]}'"})
        data, mime = IMAGES[self.image_format]
        return web.Response(status=200, body=data, headers={"Content-Type": mime})
