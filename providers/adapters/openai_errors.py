"""Error classification for OpenAI-compatible services, one body dialect each (providers-wire.md 1-2).

    openai / poe / groq / deepseek   {"error": {"message", "type", "param", "code"}}
    openrouter                       {"error": {"code": <int>, "message", "metadata"?}}  (also on HTTP 200)
    xai                              {"code": "<status phrase>", "error": "<message>"}
    aimlapi                          {"message", "path", "requestId", "statusCode", "timestamp"}

Each body is read leniently (a proxy may answer in another dialect, or in HTML): whatever is found is
combined with the HTTP status and headers, then the dialect's own rules are applied on top.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from providers.errors import ErrorKind, kind_from_status, parse_retry_after, refine_kind, wait_from_words
from providers.kinds import OpenAIDialect

# Messages echo part of the key ("Incorrect API key provided: sk-ab***yz"): never keep it.
_KEY_ECHO = re.compile(r"(api key provided:?)\s*[^\s.,;]+", re.I)
_OPENAI_QUOTA = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")
_OPENAI_POLICY = ("content_policy_violation", "image_generation_user_error", "moderation_blocked")
_TYPE_KINDS = {
    "invalid_api_key": ErrorKind.AUTH,
    "authentication_error": ErrorKind.AUTH,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "capacity_exceeded": ErrorKind.UNAVAILABLE,  # Groq 498
    "server_error": ErrorKind.UNAVAILABLE,
    "overloaded": ErrorKind.UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    kind: ErrorKind
    message: str
    status: int | None
    retry_after_s: float | None


@dataclass(slots=True)
class _Fields:
    message: str = ""
    type: str = ""
    code: str = ""
    body_status: int | None = None  # OpenRouter's numeric code, AI/ML API's statusCode
    flagged: bool = False  # OpenRouter moderation metadata


def _fields(payload: Any) -> _Fields:
    """What the body says, whatever its dialect."""
    out = _Fields()
    if not isinstance(payload, dict):
        return out
    err = payload.get("error")
    if isinstance(err, dict):
        out.message = str(err.get("message") or "")
        out.type = str(err.get("type") or "")
        code = err.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            out.body_status = code
        elif code is not None:
            out.code = str(code)
        meta = err.get("metadata")
        out.flagged = isinstance(meta, dict) and bool(meta.get("reasons") or meta.get("flagged_input"))
    elif isinstance(err, str):  # xAI: the message is the `error` string, `code` a status phrase
        out.message = err
        out.code = str(payload.get("code") or "")
    else:
        out.message = str(payload.get("message") or payload.get("detail") or "")
        status = payload.get("statusCode")
        if isinstance(status, int) and not isinstance(status, bool):
            out.body_status = status
    return out


def _kind(status: int | None, f: _Fields, dialect: OpenAIDialect, body: str) -> ErrorKind:
    words = f"{f.type} {f.code} {f.message}"
    if status is not None and (status >= 500 or status in (408, 498)):
        return ErrorKind.UNAVAILABLE  # server-side whatever the body says (it is often an HTML page)
    if f.type in _OPENAI_QUOTA or f.code in _OPENAI_QUOTA or "insufficient_quota" in body.lower():
        return ErrorKind.QUOTA_EXHAUSTED  # OpenAI sends these as 429: waiting will not help
    if f.type in _OPENAI_POLICY or f.code in _OPENAI_POLICY:
        return ErrorKind.CONTENT_POLICY
    if status in (413, 422):
        return ErrorKind.BAD_REQUEST  # Groq's 413 carries rate-limit words, but the request is too big
    if status == 403 and dialect == "openrouter" and f.flagged:
        return ErrorKind.CONTENT_POLICY
    if status == 403 and dialect == "aimlapi":
        return refine_kind(ErrorKind.QUOTA_EXHAUSTED, words)  # AI/ML API's "no credits"
    known = _TYPE_KINDS.get(f.code) or _TYPE_KINDS.get(f.type)
    if known is not None:
        # An explicit code beats words: OpenAI's rate-limit message links to ".../account/billing".
        return known
    base = ErrorKind.UNAVAILABLE if status is None else kind_from_status(status)
    return refine_kind(base, words)


def classify(status: int | None, headers: Mapping[str, str], body: str, dialect: OpenAIDialect) -> ErrorInfo:
    """The kind, a key-free message and the wait, from an HTTP status (None: error inside a 200 body)."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    f = _fields(payload)
    if f.body_status is not None and (status is None or status < 400):
        status = f.body_status  # OpenRouter after generation started: the real status is in the body
    kind = _kind(status, f, dialect, body)
    message = _KEY_ECHO.sub(r"\1 ***", f.message or _short(body) or f"HTTP {status}")
    retry = parse_retry_after(headers)
    if retry is None:
        retry = wait_from_words(f.message)
    return ErrorInfo(kind, message[:300], status, retry)


def classify_payload(payload: Mapping[str, Any], dialect: OpenAIDialect) -> ErrorInfo:
    """An `error` object inside a 200 answer or a stream event."""
    return classify(None, {}, json.dumps(payload), dialect)


def _short(body: str) -> str:
    text = " ".join(body.split())
    return "" if text.startswith("<") else text[:200]  # an HTML error page says nothing useful
