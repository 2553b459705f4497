"""A loopback fal.ai queue: submit, status (202 while running, 200 when done), result, cancel, files.

    fake = FakeFal(key="fal_test", output="images", polls_until_done=2)
    fake.complete_with_error = {"error": "...", "error_type": "..."}   # COMPLETED with an error
    fake.status_200_while_running = True   # some deployments answer 200 even while IN_PROGRESS
    fake.nsfw = [True, False]              # has_nsfw_concepts of the images output
    fake.submits / fake.status_polls       # counts, to prove resume does not submit again

Like the real queue, the status/result/cancel URLs it hands back drop the model's subpath, and input
validation happens when the job runs: the result then answers 422 with `detail` items.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from tests.fakes.base import FakeServer, respond

Output = Literal["images", "image", "video"]
FILE_BYTES = {"jpeg": b"\xff\xd8\xff\xe0fake-jpeg", "png": b"\x89PNG\r\n\x1a\nfake-png",
              "mp4": b"\x00\x00\x00\x18ftypmp42"}


@dataclass
class Job:
    id: str
    model: str
    app: str
    input: dict[str, Any]
    polls: int = 0
    status: str = "IN_QUEUE"
    cancelled: bool = False


class FakeFal(FakeServer):
    def __init__(self, key: str = "fal_test", *, output: Output = "images", polls_until_done: int = 2,
                 num_images: int = 1, nsfw: list[bool] | None = None, status_200_while_running: bool = False,
                 complete_with_error: dict[str, Any] | None = None,
                 required_fields: tuple[str, ...] = ("prompt",)) -> None:
        super().__init__()
        self.key = key
        self.output: Output = output
        self.polls_until_done = polls_until_done
        self.num_images = num_images
        self.nsfw = nsfw
        self.status_200_while_running = status_200_while_running
        self.complete_with_error = complete_with_error
        self.required_fields = required_fields
        self.jobs: dict[str, Job] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/{owner}/{app}/requests/{id}/status", self._status)
        app.router.add_get("/{owner}/{app}/requests/{id}", self._result)
        app.router.add_put("/{owner}/{app}/requests/{id}/cancel", self._cancel)
        app.router.add_post("/{model:.+}", self._submit)

    @property
    def submits(self) -> int:
        return sum(1 for c in self.calls if c.method == "POST")

    @property
    def status_polls(self) -> int:
        return sum(1 for c in self.calls if c.method == "GET" and c.path.endswith("/status"))

    # --- handlers ----------------------------------------------------------------------------
    async def _submit(self, request: web.Request) -> web.StreamResponse:
        call, answer = await self._gate(request)
        if answer is not None:
            return answer
        model = request.match_info["model"]
        parts = model.split("/")
        if len(parts) < 2:
            return respond(404, {"detail": f"Application '{model}' not found"})
        job = Job(str(uuid.uuid4()), model, "/".join(parts[:2]),
                  call.json if isinstance(call.json, dict) else {})
        self.jobs[job.id] = job
        return respond(200, {"status": "IN_QUEUE", **self._urls(job), "logs": None, "metrics": {},
                             "queue_position": 0})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        job = await self._open(request)
        if not isinstance(job, Job):
            return job  # scripted, 401 or 404
        if job.status != "COMPLETED":
            job.polls += 1
            job.status = "COMPLETED" if job.polls >= self.polls_until_done or job.cancelled else "IN_PROGRESS"
        body: dict[str, Any] = {"status": job.status, **self._urls(job)}
        if job.status != "COMPLETED":
            body["logs"] = [{"message": "step 1/4", "level": "INFO", "timestamp": "2026-11-22T03:00:00"}]
            return respond(200 if self.status_200_while_running else 202, body)
        body["metrics"] = {"inference_time": 0.42}
        if job.cancelled:
            body.update(error="Request was cancelled", error_type="client_cancelled")
        elif self.complete_with_error:
            body.update(self.complete_with_error)
        return respond(200, body)

    async def _result(self, request: web.Request) -> web.StreamResponse:
        job = await self._open(request)
        if not isinstance(job, Job):
            return job  # scripted, 401 or 404
        if job.status != "COMPLETED":
            return respond(400, {"detail": "Request is still in progress"})
        missing = [f for f in self.required_fields if not job.input.get(f)]
        if missing:
            return respond(422, {"detail": [{"loc": ["body", f], "msg": "field required",
                                             "type": "value_error.missing"} for f in missing]})
        return respond(200, self._output(job))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        job = await self._open(request)
        if not isinstance(job, Job):
            return job  # scripted, 401 or 404
        if job.status == "COMPLETED":
            return respond(400, {"status": "ALREADY_COMPLETED"})
        job.cancelled = True
        return respond(202, {"status": "CANCELLATION_REQUESTED"})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        ext = request.match_info["name"].rsplit(".", 1)[-1]
        return web.Response(body=FILE_BYTES.get(ext, b"fake"), content_type="application/octet-stream")

    # --- behaviour ---------------------------------------------------------------------------
    async def _gate(self, request: web.Request) -> tuple[Any, web.StreamResponse | None]:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return call, scripted
        if request.headers.get("Authorization") != f"Key {self.key}":
            return call, respond(401, {"detail": "Authentication is required to access this endpoint."})
        return call, None

    async def _open(self, request: web.Request) -> Job | web.StreamResponse:
        """The job a status, result or cancel call names, or the answer given instead (scripted, 401, 404)."""
        _call, answer = await self._gate(request)
        if answer is not None:
            return answer
        job = self.jobs.get(request.match_info["id"])
        if job is None or job.app != f"{request.match_info['owner']}/{request.match_info['app']}":
            return respond(404, {"detail": "Request not found"})
        return job

    def _urls(self, job: Job) -> dict[str, str]:
        base = f"{self.url}/{job.app}/requests/{job.id}"
        return {"request_id": job.id, "response_url": base, "status_url": f"{base}/status",
                "cancel_url": f"{base}/cancel"}

    def _output(self, job: Job) -> dict[str, Any]:
        if self.output == "video":
            return {"video": {"url": f"{self.url}/files/{job.id}.mp4", "content_type": "video/mp4",
                              "file_name": "output.mp4", "file_size": 123456}}
        images = [{"url": f"{self.url}/files/{job.id}-{i}.jpeg", "width": 1024, "height": 768,
                   "content_type": "image/jpeg"} for i in range(self.num_images)]
        if self.output == "image":
            return {"image": images[0], "seed": 42}
        nsfw = self.nsfw if self.nsfw is not None else [False] * len(images)
        return {"images": images, "timings": {"inference": 0.42}, "seed": 42, "has_nsfw_concepts": nsfw,
                "prompt": job.input.get("prompt", "")}
