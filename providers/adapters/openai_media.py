"""The OpenAI-style media endpoints: images generations and edits, speech, transcription
(providers-wire.md 1). The plumbing is `OpenAIBase` (openai_base); `OpenAICompatAdapter` (openai_compat)
adds chat on top of this class.

Edits go to `images/edits` as one instruction (providers.adapters.instructions): a GPT-image model follows
any instruction, swaps, masked repaints, and removes a background (asking for a transparent one); DALL-E 2
only repaints (its edits are masked inpainting).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any

import httpx

from providers.adapters.instructions import INSTRUCTION_OPS, instruction
from providers.adapters.openai_base import AUDIO_EXTENSIONS, OpenAIBase
from providers.base import CallContext
from providers.errors import ErrorKind
from providers.types import AdapterResult, EditOp, GenerationRequest, Media, Usage

# Only DALL-E models take `response_format`; GPT-image models reject it and always answer b64_json.
_RESPONSE_FORMAT_MODELS = ("dall-e-2", "dall-e-3")
_GPT_IMAGE = "gpt-image"


def sniff_image_mime(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"  # PNG, and what every OpenAI-style API defaults to


class OpenAIMedia(OpenAIBase):
    """Images (generations, edits), speech and transcription, for every OpenAI-style service."""

    def default_edit_ops(self, model: str) -> frozenset[EditOp]:
        if model.startswith(_GPT_IMAGE):
            return INSTRUCTION_OPS | {EditOp.REMOVE_BACKGROUND}
        return frozenset({EditOp.INPAINT})

    # --- images ------------------------------------------------------------------------------

    async def generate_image(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        body: dict[str, Any] = {"model": model, "prompt": request.prompt, "n": 1}
        if request.options.get("size"):
            body["size"] = str(request.options["size"])
        if model.startswith(_RESPONSE_FORMAT_MODELS):
            # b64 saves a second download and never expires; a caller may still ask for a URL.
            body["response_format"] = str(request.options.get("response_format") or "b64_json")
        response = await self.send("POST", self.url("images/generations"), ctx, json=body, headers=self.headers())
        return self.images_result(response, model)

    async def edit_image(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        if not request.image:
            raise self.fail(ErrorKind.BAD_REQUEST, "an image edit needs a source image")
        ext = mimetypes.guess_extension(request.image_mime) or ".png"
        files: dict[str, tuple[str, bytes, str]] = {"image": (f"image{ext}", request.image, request.image_mime)}
        if request.mask:
            files["mask"] = ("mask.png", request.mask, "image/png")
        data = {"model": model, "prompt": instruction(request)}
        if request.options.get("size"):
            data["size"] = str(request.options["size"])
        if request.edit_op is EditOp.REMOVE_BACKGROUND and model.startswith(_GPT_IMAGE):
            data["background"] = "transparent"
        response = await self.send("POST", self.url("images/edits"), ctx, data=data, files=files,
                                   headers=self.headers())
        return self.images_result(response, model)

    def images_result(self, response: httpx.Response, model: str) -> AdapterResult:
        payload = self.json_object(response)
        items = payload.get("data")
        if not isinstance(items, list) or not items:
            raise self.invalid("no images in the response")
        media = tuple(self._image_media(item) for item in items)
        return AdapterResult(model=model, media=media, usage=Usage(images=len(media)))

    def _image_media(self, item: Any) -> Media:
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self.invalid("b64_json is not valid base64") from exc
            if not data:
                raise self.invalid("b64_json is empty")
            return Media(mime=sniff_image_mime(data), data=data)
        if isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]:
            return Media(mime="image/png", url=item["url"])
        raise self.invalid("an image item has neither url nor b64_json")

    # --- audio -------------------------------------------------------------------------------

    async def speech(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        text = request.prompt
        body: dict[str, Any] = {"model": model, "input": text, "voice": str(request.options.get("voice") or "alloy"),
                                "response_format": "mp3"}
        for optional in ("speed", "instructions"):
            if request.options.get(optional) is not None:
                body[optional] = request.options[optional]
        response = await self.send("POST", self.url("audio/speech"), ctx, json=body, headers=self.headers())
        audio = response.content
        ctype = response.headers.get("content-type", "").lower()
        if not audio or "json" in ctype or "text/" in ctype or audio.lstrip()[:1] in (b"{", b"["):
            raise self.invalid("speech answer is not audio")
        return AdapterResult(model=model, media=(Media(mime="audio/mpeg", data=audio),),
                             usage=Usage(characters=len(text)))

    async def transcription(self, request: GenerationRequest, model: str, ctx: CallContext) -> AdapterResult:
        """Speech to text: multipart `file` + `model` (+ `language`) -> {"text"}; priced by the recording's
        length, which the caller knows (`audio_seconds`): the default answer does not say it."""
        if not request.audio:
            raise self.fail(ErrorKind.BAD_REQUEST, "a transcription needs the audio")
        mime = request.audio_type()
        filename = f"audio.{AUDIO_EXTENSIONS.get(mime, 'ogg')}"
        data = {"model": model, "response_format": "json"}
        if request.options.get("language"):
            data["language"] = str(request.options["language"])
        response = await self.send("POST", self.url("audio/transcriptions"), ctx, data=data,
                                   files={"file": (filename, request.audio, mime)}, headers=self.headers())
        text = self.json_object(response).get("text")
        if not isinstance(text, str):
            raise self.invalid("transcription has no text")
        return AdapterResult(model=model, text=text, usage=Usage(seconds=request.audio_seconds))
