"""The classification helpers every adapter shares: Retry-After forms, waits in words, status kinds."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from providers.errors import (
    AllProvidersFailed,
    Attempt,
    ErrorKind,
    kind_from_status,
    parse_retry_after,
    refine_kind,
    wait_from_words,
)
from providers.types import Category

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=86_400))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after({"Retry-After": str(seconds)}, NOW) == seconds


@given(st.integers(min_value=0, max_value=10_000_000))
def test_retry_after_ms_wins_over_seconds(ms: int) -> None:
    assert parse_retry_after({"retry-after-ms": str(ms), "retry-after": "999"}, NOW) == ms / 1000


@given(st.integers(min_value=1, max_value=86_400))
def test_retry_after_http_date(seconds: int) -> None:
    when = email.utils.format_datetime(NOW + timedelta(seconds=seconds), usegmt=True)
    assert parse_retry_after({"Retry-After": when}, NOW) == seconds


def test_retry_after_in_the_past_or_garbage() -> None:
    past = email.utils.format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after({"Retry-After": past}, NOW) == 0
    assert parse_retry_after({"Retry-After": "soon"}, NOW) is None
    assert parse_retry_after({}, NOW) is None


def test_waits_in_words() -> None:
    assert wait_from_words("Request was throttled. Your rate limit resets in ~30s.") == 30
    assert wait_from_words("Rate limit reached. Please try again in 250ms.") == 0.25
    assert wait_from_words("Please try again in 2 minutes") == 120
    assert wait_from_words("no number here") is None


@given(st.integers(min_value=500, max_value=599))
def test_server_errors_are_unavailable(status: int) -> None:
    assert kind_from_status(status) is ErrorKind.UNAVAILABLE


def test_status_defaults() -> None:
    assert kind_from_status(429) is ErrorKind.RATE_LIMITED
    assert kind_from_status(402) is ErrorKind.QUOTA_EXHAUSTED
    assert kind_from_status(401) is ErrorKind.AUTH
    assert kind_from_status(422) is ErrorKind.BAD_REQUEST


@given(st.sampled_from(list(ErrorKind)))
def test_quota_words_win_whatever_the_status_said(base: ErrorKind) -> None:
    assert refine_kind(base, "You exceeded your current quota (insufficient_quota)") is ErrorKind.QUOTA_EXHAUSTED
    assert refine_kind(base, "Your credit balance is too low to access the API") is ErrorKind.QUOTA_EXHAUSTED


def test_policy_only_refines_client_errors() -> None:
    assert refine_kind(ErrorKind.BAD_REQUEST, "content_policy_violation") is ErrorKind.CONTENT_POLICY
    assert refine_kind(ErrorKind.UNAVAILABLE, "safety system overloaded") is ErrorKind.UNAVAILABLE


def _attempt(kind: ErrorKind | None, order: int) -> Attempt:
    return Attempt(f"p{order}", "m", Category.TEXT, order, kind, 500, 1.0)


def test_all_failed_names_every_attempt_and_prefers_user_facing_kind() -> None:
    err = AllProvidersFailed(Category.TEXT, [_attempt(ErrorKind.RATE_LIMITED, 0),
                                             _attempt(ErrorKind.CONTENT_POLICY, 1)], NOW, {"p9": "cooling down"})
    assert err.kind is ErrorKind.CONTENT_POLICY
    text = str(err)
    assert "p0" in text and "p1" in text and "p9" in text and NOW.isoformat() in text
