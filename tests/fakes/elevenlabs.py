"""A loopback ElevenLabs text-to-speech: `POST /v1/text-to-speech/{voice_id}?output_format=...`.

Checks `xi-api-key`, the JSON body and the voice, keeps a character quota, and answers raw MP3 bytes.
Errors come in both real forms (helpers below): the new `{"detail": {"type", "code", "message", "status",
"request_id"}}` and the old `{"detail": {"status", "message"}}`; 422 validation is FastAPI's list form.

    fake.quota_chars = 10      # characters left; a longer text gets 401 quota_exceeded
    fake.old_errors = True     # the fake's own errors use the old form
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer, respond

DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"
# An ID3v2 header (no frames) followed by two MPEG-1 Layer III 128 kbit/s 44.1 kHz frames of silence.
_FRAME = b"\xff\xfb\x90\x64" + bytes(413)
MP3_BYTES = b"ID3\x04\x00\x00\x00\x00\x00\x00" + _FRAME * 2
_CODECS = ("mp3", "pcm", "ulaw", "alaw", "opus", "wav")


def error_new(code: str, message: str, type_: str = "validation_error") -> dict[str, Any]:
    return {"detail": {"type": type_, "code": code, "message": message, "status": code,
                       "request_id": secrets.token_hex(8)}}


def error_old(status_word: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status_word, "message": message}}


def validation_error(field: str, msg: str = "Field required") -> dict[str, Any]:
    return {"detail": [{"loc": ["body", field], "msg": msg, "type": "missing"}]}


class FakeElevenLabs(FakeServer):
    def __init__(self, api_key: str = "xi-test-key", *, voices: tuple[str, ...] = (DEFAULT_VOICE, "voice-b"),
                 character_limit: int = 5000, quota_chars: int | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.voices = set(voices)
        self.character_limit = character_limit
        self.quota_chars = quota_chars
        self.old_errors = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text-to-speech/{voice_id}", self._tts)

    def _error(self, status: int, code: str, message: str, type_: str = "validation_error") -> web.Response:
        body = error_old(code, message) if self.old_errors else error_new(code, message, type_)
        return respond(status, body)

    async def _tts(self, request: web.Request) -> web.StreamResponse:
        call, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        if request.headers.get("xi-api-key") != self.api_key:
            return self._error(401, "invalid_api_key", "Invalid API key", "authentication_error")
        body = call.json if isinstance(call.json, dict) else None
        if body is None or not isinstance(body.get("text"), str):
            return respond(422, validation_error("text"))
        text: str = body["text"]
        codec = request.query.get("output_format", "mp3_44100_128").split("_", 1)[0]
        if codec not in _CODECS:
            return respond(422, validation_error("output_format", "Invalid output format"))
        if request.match_info["voice_id"] not in self.voices:
            return self._error(400, "voice_not_found",
                               f"A voice with voice_id {request.match_info['voice_id']} was not found.")
        if len(text) > self.character_limit:
            return self._error(400, "max_character_limit_exceeded",
                               f"Text is {len(text)} characters; the maximum is {self.character_limit}.")
        if self.quota_chars is not None:
            if len(text) > self.quota_chars:
                return self._error(401, "quota_exceeded",
                                   f"This request exceeds your quota of 10000. You have {self.quota_chars} "
                                   f"credits remaining, while {len(text)} credits are required for this request.",
                                   "authorization_error")
            self.quota_chars -= len(text)
        return web.Response(status=200, body=MP3_BYTES, headers={
            "Content-Type": "audio/mpeg", "character-cost": str(len(text)), "request-id": secrets.token_hex(8)})
