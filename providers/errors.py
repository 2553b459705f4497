"""The provider error tree, and the classification helpers every adapter shares.

    ProviderError(kind=...)        one provider failed once; `kind` decides what the manager does
    AllProvidersFailed             every provider of a route failed; holds every attempt

Kinds (design.md): rate_limited, quota_exhausted, auth, unavailable, invalid_response -> fall back;
bad_request, content_policy -> never fall back, never retry.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from providers.types import Category, Usage


class ErrorKind(StrEnum):
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    AUTH = "auth"
    UNAVAILABLE = "unavailable"
    INVALID_RESPONSE = "invalid_response"
    BAD_REQUEST = "bad_request"
    CONTENT_POLICY = "content_policy"

    @property
    def recoverable(self) -> bool:
        """True when another provider may succeed where this one failed."""
        return self not in (ErrorKind.BAD_REQUEST, ErrorKind.CONTENT_POLICY)

    @property
    def long_cooldown(self) -> bool:
        """Kinds that do not heal by waiting a little: the provider is parked and admins alerted."""
        return self in (ErrorKind.QUOTA_EXHAUSTED, ErrorKind.AUTH)


class ProviderError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        provider: str | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.provider = provider
        self.job_id = job_id

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{where}{self.kind}{status}: {self.message}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one provider; what the request log records. `kind is None` means success."""

    provider: str
    model: str
    category: Category
    order: int  # 0 = first tried for this request
    kind: ErrorKind | None
    status: int | None
    latency_ms: float
    cost_micros: int = 0
    usage: Usage = field(default_factory=Usage)
    job_id: str | None = None
    message: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.kind is None


class AllProvidersFailed(Exception):
    """Every provider of the route failed (or was cooling down). Holds each attempt made."""

    def __init__(
        self,
        category: Category,
        attempts: Sequence[Attempt],
        retry_at: datetime | None,
        skipped: Mapping[str, str] | None = None,
    ) -> None:
        self.category = category
        self.attempts = list(attempts)
        self.retry_at = retry_at  # earliest moment a retry can work (UTC), None when unknown
        self.skipped = dict(skipped or {})  # provider -> why it was not tried
        super().__init__(self._describe())

    @property
    def kind(self) -> ErrorKind:
        """The kind that best explains the failure to a user: a non-recoverable one wins."""
        kinds = [a.kind for a in self.attempts if a.kind is not None]
        for k in (ErrorKind.CONTENT_POLICY, ErrorKind.BAD_REQUEST):
            if k in kinds:
                return k
        return kinds[-1] if kinds else ErrorKind.UNAVAILABLE

    def _describe(self) -> str:
        parts = [f"{a.provider}/{a.model}: {a.kind} {a.status or ''} {a.message}".strip() for a in self.attempts]
        parts += [f"{name}: skipped ({why})" for name, why in self.skipped.items()]
        when = f"; retry after {self.retry_at.isoformat()}" if self.retry_at else ""
        return f"all providers failed for {self.category}: " + "; ".join(parts) + when


# --- helpers shared by adapters -------------------------------------------------------------

_WORD_WAIT = re.compile(
    r"(?:in|after)\s+~?\s*(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|sec|seconds?|m|min|minutes?)\b", re.I
)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait, from `retry-after-ms`, then `retry-after` (seconds or an HTTP date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def wait_from_words(text: str) -> float | None:
    """Seconds from phrases like 'resets in ~30s' or 'try again in 250ms' (Replicate, OpenAI)."""
    match = _WORD_WAIT.search(text or "")
    if not match:
        return None
    amount, unit = float(match.group(1)), match.group(2).lower()
    if unit.startswith("ms") or unit.startswith("milli"):
        return amount / 1000.0
    if unit.startswith("m"):
        return amount * 60.0
    return amount


def kind_from_status(status: int) -> ErrorKind:
    """The default kind for an HTTP status; adapters refine it from the body and headers."""
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status == 402:
        return ErrorKind.QUOTA_EXHAUSTED
    if status in (401, 403):
        return ErrorKind.AUTH
    if status in (408, 409, 425) or status >= 500:
        return ErrorKind.UNAVAILABLE
    if 400 <= status < 500:
        return ErrorKind.BAD_REQUEST
    return ErrorKind.INVALID_RESPONSE


_QUOTA_WORDS = re.compile(
    r"insufficient[_ ]quota|insufficient[_ ](?:credit|balance|funds)|credit balance is too low|"
    r"quota[_ ]exceeded|exceeded your (?:current )?quota|exhausted balance|used up your points|"
    r"(?:doesn't|does not) have any credits|lack sufficient credits|payment[_ ]required|"
    r"monthly included credits|out of credits|billing",
    re.I,
)
_AUTH_WORDS = re.compile(r"incorrect api key|invalid[_ ]api[_ ]key|invalid authentication|unauthori[sz]ed|"
                         r"authentication_error|no api key|api key not valid", re.I)
_POLICY_WORDS = re.compile(r"content[_ ]policy|content[_ ]moderation|moderation|safety|flagged|nsfw|"
                           r"content_filter|content_filtered", re.I)
_RATE_WORDS = re.compile(r"rate[_ ]limit|too many (?:concurrent )?requests|throttl|concurrent_limit|"
                         r"too_many_concurrent", re.I)


def refine_kind(base: ErrorKind, text: str) -> ErrorKind:
    """Body text overrides the status: quota and auth hide behind 429/400/401/403, policy behind 400/403."""
    if _QUOTA_WORDS.search(text):
        return ErrorKind.QUOTA_EXHAUSTED
    if _AUTH_WORDS.search(text):
        return ErrorKind.AUTH
    if base in (ErrorKind.BAD_REQUEST, ErrorKind.AUTH) and _POLICY_WORDS.search(text):
        return ErrorKind.CONTENT_POLICY
    if base == ErrorKind.BAD_REQUEST and _RATE_WORDS.search(text):
        return ErrorKind.RATE_LIMITED
    return base


def retry_at_from(seconds: float | None, now: datetime | None = None) -> datetime | None:
    if seconds is None:
        return None
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)
