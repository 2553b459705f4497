"""Replicate predictions (providers-wire.md section 4): create with `Prefer: wait`, poll, cancel.

Models: "owner/name" runs the model's latest version (POST /models/{owner}/{name}/predictions);
"owner/name:<version>" or a bare 64-hex version pins one (POST /predictions {"version", "input"}).
The job id is the prediction id; `resume` polls GET /predictions/{id} and never creates.

Provider options (providers file): `prefer_wait_s` (seconds the create call may be held; 0 = never),
`cancel_after` (sent as `Cancel-After`, e.g. "5m"), `input` (fixed inputs merged into every call),
`image_field` (input name of the source image for image_edit; default "image", "input_image" for Kontext).

Edits: a FLUX Kontext model (its name says "kontext") follows instructions: it gets the edit as one
instruction (providers.adapters.instructions) and the picture as `input_image`, and does the instruction
operations only; any other model gets the prompt as written and is assumed to do every fixed operation.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx
from loguru import logger

from providers.adapters.instructions import INSTRUCTION_OPS, instruction, is_kontext
from providers.adapters.polling import data_uri, media_from_url, poll_until, same_origin, tagged_with_job
from providers.base import FIXED_EDIT_OPS, Adapter, CallContext, error_json, error_text
from providers.errors import (
    ErrorKind,
    ProviderError,
    kind_from_status,
    parse_retry_after,
    refine_kind,
    wait_from_words,
)
from providers.types import AdapterResult, Category, EditOp, GenerationRequest, Media, Usage

_VERSION = re.compile(r"^[0-9a-f]{64}$")
_POLICY = re.compile(r"nsfw|safety|sensitive|content[ _]policy|flagged", re.I)
_RUNNING = frozenset({"starting", "processing"})
_GAVE_UP = frozenset({"canceled", "cancelled", "aborted"})
_DEFAULT_MIME = {Category.IMAGE: "image/png", Category.IMAGE_EDIT: "image/png", Category.VIDEO: "video/mp4",
                 Category.AUDIO: "audio/mpeg"}
_RENAMED_OPTIONS = {"duration_s": "duration"}
_MAX_WAIT_S = 60  # the most `Prefer: wait` accepts


class ReplicateAdapter(Adapter):
    kind = "replicate"
    categories = frozenset({Category.IMAGE, Category.IMAGE_EDIT, Category.VIDEO, Category.AUDIO, Category.TEXT})

    def default_edit_ops(self, model: str) -> frozenset[EditOp]:
        return INSTRUCTION_OPS if is_kontext(model) else FIXED_EDIT_OPS

    async def generate(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        url, body = self._create_call(model, request)
        response = await self.send("POST", url, ctx, json=body, headers=self._headers(ctx, create=True))
        prediction = self._prediction(response)
        job_id = str(prediction["id"])
        ctx.report_job(job_id)
        logger.debug("{}: prediction {} is {}", self.name, job_id, prediction["status"])
        with tagged_with_job(job_id):
            done = self._settled(prediction)
            if done is None:
                done = await self._poll(self._poll_url(prediction), ctx, job_id, wait_first=True)
            return self._result(done, request, model, job_id)

    async def resume(self, job_id: str, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        with tagged_with_job(job_id):
            done = await self._poll(self.url(f"predictions/{quote(job_id, safe='')}"), ctx, job_id)
            return self._result(done, request, model, job_id)

    async def cancel(self, job_id: str) -> bool:
        ctx = CallContext(timeout_s=self.config.timeout_s)
        url = self.url(f"predictions/{quote(job_id, safe='')}/cancel")
        try:
            await self.send("POST", url, ctx, headers=self._headers(ctx))
        except ProviderError as exc:  # best effort: the job ends on its own or by Cancel-After
            logger.warning("{}: cancel of prediction {} failed: {}", self.name, job_id, exc.kind)
            return False
        return True

    def error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = error_json(response)
        title = str(body.get("title") or "") if isinstance(body, dict) else ""
        detail = str(body.get("detail") or "") if isinstance(body, dict) else ""
        message = ": ".join(p for p in (title, detail) if p) or error_text(response, 200) or f"HTTP {status}"
        kind = refine_kind(kind_from_status(status), message)
        if status == 422 and isinstance(body, dict):
            fields = _invalid_fields(body.get("invalid_fields"))
            if fields:
                message = f"{title or 'Input validation failed'}: {fields}"
        retry_after = None
        if kind is ErrorKind.RATE_LIMITED:
            retry_after = parse_retry_after(response.headers)
            if retry_after is None:
                retry_after = wait_from_words(detail or message)
        return self.fail(kind, message[:500], status=status, retry_after_s=retry_after)

    # --- requests ------------------------------------------------------------------------------

    def _headers(self, ctx: CallContext, *, create: bool = False) -> dict[str, str]:
        if not self.config.api_key:
            raise self.fail(ErrorKind.AUTH, "no API key configured")
        headers = {**self.config.headers, "Authorization": f"Bearer {self.config.api_key}"}
        if create:
            wait = self._prefer_wait_s(ctx)
            if wait > 0:
                headers["Prefer"] = f"wait={wait}"
            cancel_after = self.config.options.get("cancel_after")
            if cancel_after:
                headers["Cancel-After"] = str(cancel_after)
        return headers

    def _prefer_wait_s(self, ctx: CallContext) -> int:
        """How long Replicate may hold the create call: a margin under our own timeout, so its
        answer (the finished or still-running prediction) arrives before we give up on the call."""
        configured = self.config.options.get("prefer_wait_s")
        wanted = float(configured) if configured is not None else float(_MAX_WAIT_S)
        return int(max(0.0, min(wanted, _MAX_WAIT_S, ctx.timeout_s * 0.8)))

    def _create_call(self, model: str, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        name, _, version = model.partition(":")
        if not version and _VERSION.match(name):
            name, version = "", name
        inputs = self._input(request, model)
        if version:
            return self.url("predictions"), {"version": version, "input": inputs}
        if name.count("/") != 1:
            raise self.fail(ErrorKind.BAD_REQUEST, f"model {model!r} is not owner/name[:version]")
        owner, model_name = name.split("/")
        return self.url(f"models/{quote(owner, safe='')}/{quote(model_name, safe='')}/predictions"), \
            {"input": inputs}

    def _input(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        fixed = self.config.options.get("input")
        inputs: dict[str, Any] = dict(fixed) if isinstance(fixed, dict) else {}
        category = request.category
        if category is Category.TEXT:
            inputs["prompt"] = _flatten_chat(request)
            if request.system:
                inputs["system_prompt"] = request.system
            if request.max_tokens:
                inputs["max_tokens"] = request.max_tokens
        elif category is Category.AUDIO:
            inputs["text"] = request.prompt  # Replicate's speech models take `text`
        elif category is Category.IMAGE_EDIT and is_kontext(model):
            inputs["prompt"] = instruction(request)
        else:
            inputs["prompt"] = request.prompt
        if category is Category.IMAGE_EDIT and request.image is not None:
            field = self.config.options.get("image_field") or ("input_image" if is_kontext(model) else "image")
            inputs[str(field)] = data_uri(request.image, request.image_mime)
            if request.mask is not None:
                inputs["mask"] = data_uri(request.mask, "image/png")
        for key, value in request.options.items():
            inputs[_RENAMED_OPTIONS.get(key, key)] = value
        return inputs

    # --- responses -----------------------------------------------------------------------------

    async def _poll(self, url: str, ctx: CallContext, job_id: str, *, wait_first: bool = False) -> dict[str, Any]:
        async def fetch() -> dict[str, Any] | None:
            response = await self.send("GET", url, ctx, headers=self._headers(ctx))
            return self._settled(self._prediction(response))

        return await poll_until(fetch, ctx, f"replicate prediction {job_id}", provider=self.name,
                                wait_first=wait_first)

    def _poll_url(self, prediction: dict[str, Any]) -> str:
        urls = prediction.get("urls")
        get = urls.get("get") if isinstance(urls, dict) else None
        if isinstance(get, str) and same_origin(get, self.config.base_url):
            return get
        return self.url(f"predictions/{quote(str(prediction['id']), safe='')}")

    def _prediction(self, response: httpx.Response) -> dict[str, Any]:
        body = self.json_body(response)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"] \
                or not isinstance(body.get("status"), str):
            raise self.fail(ErrorKind.INVALID_RESPONSE, "not a prediction (no id or status)",
                            status=response.status_code)
        return body

    def _settled(self, prediction: dict[str, Any]) -> dict[str, Any] | None:
        """The prediction when it succeeded, None while it runs; a failed one raises."""
        status = str(prediction["status"])
        if status in _RUNNING:
            return None
        if status == "succeeded":
            return prediction
        if status == "failed":
            reason = str(prediction.get("error") or "prediction failed")
            kind = ErrorKind.CONTENT_POLICY if _POLICY.search(reason) else ErrorKind.UNAVAILABLE
            raise self.fail(kind, reason[:500], status=200)
        if status in _GAVE_UP:
            raise self.fail(ErrorKind.UNAVAILABLE, f"prediction {status}", status=200)
        raise self.fail(ErrorKind.INVALID_RESPONSE, f"unknown prediction status {status[:40]!r}", status=200)

    def _result(self, prediction: dict[str, Any], request: GenerationRequest, model: str,
                job_id: str) -> AdapterResult:
        output = prediction.get("output")
        raw_metrics = prediction.get("metrics")
        metrics: dict[str, Any] = raw_metrics if isinstance(raw_metrics, dict) else {}
        predict_time = _number(metrics.get("predict_time"))
        category = request.category
        if category is Category.TEXT:
            text = _joined_text(output)
            if text is None:
                raise self.fail(ErrorKind.INVALID_RESPONSE, "text output is not a string or tokens", status=200)
            usage = Usage(input_tokens=int(_number(metrics.get("input_token_count"))),
                          output_tokens=int(_number(metrics.get("output_token_count"))))
            return AdapterResult(model=model, text=text, usage=usage, job_id=job_id)
        media = self._media(output, _DEFAULT_MIME[category])
        if category is Category.VIDEO:
            seconds = _number(request.options.get("duration_s")) or predict_time
            usage = Usage(seconds=seconds)
        elif category is Category.AUDIO:
            usage = Usage(characters=len(request.prompt), seconds=predict_time)
        else:
            usage = Usage(images=len(media))
        return AdapterResult(model=model, media=media, usage=usage, job_id=job_id)

    def _media(self, output: Any, default_mime: str) -> tuple[Media, ...]:
        if isinstance(output, str):
            items: list[Any] = [output]
        elif isinstance(output, list):
            items = output
        elif isinstance(output, dict):  # a few models name their files: {"audio_out": url}
            items = list(output.values())
        else:
            items = []
        media = [m for m in (media_from_url(i, default_mime) for i in items if isinstance(i, str)) if m]
        if not media:
            raise self.fail(ErrorKind.INVALID_RESPONSE, "prediction succeeded without a file URL", status=200)
        return tuple(media)


def _invalid_fields(value: Any) -> str:
    items = value if isinstance(value, list) else []
    return "; ".join(f"{i.get('field', '?')}: {i.get('description') or i.get('type') or 'invalid'}"
                     for i in items if isinstance(i, dict))


def _flatten_chat(request: GenerationRequest) -> str:
    messages = request.chat_messages()
    if len(messages) == 1:
        return messages[0].content
    return "\n".join(f"{m.role}: {m.content}" for m in messages) + "\nassistant:"


def _joined_text(output: Any) -> str | None:
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(t, str) for t in output):
        return "".join(output)
    return None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
