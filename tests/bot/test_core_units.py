"""Small rules of the core, without a network: flood control, /edit parsing, failure wording, labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.handlers.media import EditCommand, parse_edit
from bot.i18n import Translate
from bot.middlewares.throttling import Throttling
from bot.services.answers import WorkState
from bot.services.failures import failure_text, refusal_text, relative_time
from bot.services.progress import format_elapsed
from db.repo.records import Reservation
from providers.errors import AllProvidersFailed, Attempt, ErrorKind, ProviderError
from providers.types import Category, EditOp

EN, RU = Translate("en"), Translate("ru")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttling_allows_the_rate_then_warns_once_per_window() -> None:
    clock = Clock()
    throttle = Throttling(rate=3, window=10.0, clock=clock)
    assert [throttle.allow(1) for _ in range(3)] == [(True, False)] * 3
    assert throttle.allow(1) == (False, True)  # the first refused update is told to slow down
    assert throttle.allow(1) == (False, False)  # later ones in the same window are dropped silently
    assert throttle.allow(2) == (True, False)  # other users are not affected
    clock.now = 10.5
    assert throttle.allow(1) == (True, False)


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=60))
def test_throttling_never_lets_more_than_the_rate_through_in_a_window(gaps: list[float]) -> None:
    clock = Clock()
    throttle = Throttling(rate=5, window=2.0, clock=clock)
    allowed: list[float] = []
    for gap in gaps:
        clock.now += gap
        if throttle.allow(7)[0]:
            allowed.append(clock.now)
    for i, start in enumerate(allowed):
        assert sum(1 for t in allowed[i:] if t < start + 2.0) <= 5


@pytest.mark.parametrize(("args", "want"), [
    ("erase", EditCommand(EditOp.ERASE)),
    ("removebg", EditCommand(EditOp.REMOVE_BACKGROUND)),
    ("bg", EditCommand(EditOp.REMOVE_BACKGROUND)),
    ("remove-background", EditCommand(EditOp.REMOVE_BACKGROUND)),
    ("inpaint a red hat", EditCommand(EditOp.INPAINT, "a red hat")),
    ("outpaint wider beach", EditCommand(EditOp.OUTPAINT, "wider beach")),
    ("replace cat with dog", EditCommand(EditOp.SEARCH_REPLACE, "dog", "cat")),
    ("search_replace old car -> new red car", EditCommand(EditOp.SEARCH_REPLACE, "new red car", "old car")),
    ("replace кошка на собака", EditCommand(EditOp.SEARCH_REPLACE, "собака", "кошка")),
    ("UPSCALE", EditCommand(EditOp.UPSCALE)),
    ("remove background", EditCommand(EditOp.REMOVE_BACKGROUND)),
    ("Remove BG please", EditCommand(EditOp.REMOVE_BACKGROUND, "please")),
    ("search and replace cat with dog", EditCommand(EditOp.SEARCH_REPLACE, "dog", "cat")),
    ("upscale x2", EditCommand(EditOp.UPSCALE, options={"scale": 2})),
    ("upscale 4x sharper", EditCommand(EditOp.UPSCALE, "sharper", options={"scale": 4})),
    ("extend", EditCommand(EditOp.OUTPAINT)),
    ("extend a wider beach", EditCommand(EditOp.OUTPAINT, "a wider beach")),
    ("make the sky purple", EditCommand(EditOp.INSTRUCT, "make the sky purple")),
    ("remove the person on the left", EditCommand(EditOp.INSTRUCT, "remove the person on the left")),
    ("сделай ночь", EditCommand(EditOp.INSTRUCT, "сделай ночь")),
    ("", "usage.edit"), (None, "usage.edit"), ("sharpen", EditCommand(EditOp.INSTRUCT, "sharpen")),
    ("inpaint", "usage.edit_needs_text"), ("replace cat", "usage.search_replace"),
])
def test_parse_edit(args: str | None, want: EditCommand | str) -> None:
    assert parse_edit(args) == want


def test_relative_time_in_both_languages() -> None:
    moscow = ZoneInfo("Europe/Moscow")
    assert relative_time(NOW + timedelta(seconds=110), EN, ZoneInfo("UTC"), NOW) == "in 2 minutes (at 12:01)"
    assert relative_time(NOW + timedelta(seconds=20), EN, ZoneInfo("UTC"), NOW) == "in 20 seconds (at 12:00)"
    assert relative_time(NOW + timedelta(hours=1, minutes=1), RU, moscow, NOW) == "через 61 минуту (в 16:01)"
    assert relative_time(NOW + timedelta(hours=3, minutes=10), RU, moscow, NOW) == "через 3 часа (в 18:10)"
    assert relative_time(NOW + timedelta(hours=5), EN, ZoneInfo("UTC"), NOW) == "in 5 hours (at 17:00)"
    assert relative_time(NOW + timedelta(minutes=21), RU, moscow, NOW) == "через 21 минуту (в 15:21)"


def attempt(kind: ErrorKind, provider: str = "p") -> Attempt:
    return Attempt(provider, "m", Category.TEXT, 0, kind, 400, 1.0)


def test_failure_text_by_kind() -> None:
    utc = ZoneInfo("UTC")
    policy = AllProvidersFailed(Category.IMAGE, [attempt(ErrorKind.RATE_LIMITED), attempt(ErrorKind.CONTENT_POLICY)],
                                None)
    assert "unsafe" in failure_text(policy, "image", EN, utc, NOW)
    bad = ProviderError(ErrorKind.BAD_REQUEST, "prompt too long")
    assert "couldn't accept" in failure_text(bad, "text", EN, utc, NOW)
    busy = AllProvidersFailed(Category.TEXT, [attempt(ErrorKind.RATE_LIMITED)], NOW + timedelta(minutes=3))
    text = failure_text(busy, "text", EN, utc, NOW)
    assert "Chat" in text and "in 3 minutes" in text and "prompt" not in text
    unknown = AllProvidersFailed(Category.VIDEO, [attempt(ErrorKind.UNAVAILABLE)], None)
    assert "in a few minutes" in failure_text(unknown, "video", EN, utc, NOW)
    single = ProviderError(ErrorKind.RATE_LIMITED, "slow down", retry_after_s=30)
    assert "in 30 seconds" in failure_text(single, "text", EN, utc, NOW)


def test_refusal_text() -> None:
    assert refusal_text(Reservation("duplicate", 5, 3), 1, EN, "UTC", can_buy=False) is None
    assert refusal_text(Reservation("insufficient", None, 2), 5, EN, "UTC", can_buy=False) == (
        "😔 Not enough credits: this costs 5 credits, you have 2. Ask an admin for more, or check /balance.")
    assert "today's allowance" in (refusal_text(Reservation("budget_day", None, 9), 1, EN, "Europe/Paris",
                                                can_buy=False) or "")
    assert "Месячный" in (refusal_text(Reservation("budget_month", None, 9), 1, RU, "UTC", can_buy=True) or "")


def test_out_of_credits_points_to_buy_when_packs_are_on_sale() -> None:
    short = Reservation("insufficient", None, 2)
    assert refusal_text(short, 5, EN, "UTC", can_buy=True) == (
        "😔 Not enough credits: this costs 5 credits, you have 2. Get more with /buy, or check /balance.")
    assert "/buy" in (refusal_text(short, 5, RU, "UTC", can_buy=True) or "")
    assert "/buy" not in (refusal_text(short, 5, RU, "UTC", can_buy=False) or "")


def test_work_state_follows_the_route_as_providers_fail() -> None:
    state = WorkState(["a", "b", "c"])
    assert state.provider == "a"
    state.failed(attempt(ErrorKind.RATE_LIMITED, "a"))
    assert state.provider == "b"
    state.failed(attempt(ErrorKind.UNAVAILABLE, "c"))
    assert state.provider == "c"  # the last one may be retried once


def test_format_elapsed() -> None:
    assert [format_elapsed(s) for s in (0, 9.9, 61, 3600)] == ["0:00", "0:09", "1:01", "60:00"]
