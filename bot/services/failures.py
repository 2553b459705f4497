"""Short human messages for every way a request can end badly; never a traceback or a raw error."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.i18n import Translate
from db.repo.records import Closed, Reservation
from providers.errors import AllProvidersFailed, ErrorKind, ProviderError, retry_at_from


def relative_time(when: datetime, t: Translate, tz: ZoneInfo, now: datetime | None = None) -> str:
    """'in 2 minutes (at 14:05)' in the user's language, the clock in the bot's time zone."""
    seconds = max(1.0, (when - (now or datetime.now(UTC))).total_seconds())
    if seconds < 60:
        relative = t("time.in_seconds", n=math.ceil(seconds))
    elif seconds < 90 * 60:  # "in 61 minutes" says more than "in 2 hours"
        relative = t("time.in_minutes", n=math.ceil(seconds / 60))
    else:
        relative = t("time.in_hours", n=round(seconds / 3600))
    return t("time.at", relative=relative, clock=when.astimezone(tz).strftime("%H:%M"))


def category_name(category: str, t: Translate) -> str:
    return t(f"category.{category}")


def credits_text(n: int, t: Translate) -> str:
    return t("model.credits", n=n)


def refusal_text(reservation: Reservation, cost: int, t: Translate, tz_name: str, *, can_buy: bool) -> str | None:
    """What to say when credits could not be reserved; None for a duplicate update (say nothing).
    `can_buy`: credit packs are on sale, so the way to more credits is /buy rather than an admin."""
    if reservation.status == "insufficient":
        key = "errors.insufficient_buy" if can_buy else "errors.insufficient"
        return t(key, cost=credits_text(cost, t), balance=reservation.balance)
    if reservation.status == "budget_day":
        return t("errors.budget_day", tz=tz_name)
    if reservation.status == "budget_month":
        return t("errors.budget_month", tz=tz_name)
    return None


def failure_text(exc: AllProvidersFailed | ProviderError, category: str, t: Translate, tz: ZoneInfo,
                 now: datetime | None = None) -> str:
    kind = exc.kind
    if kind is ErrorKind.CONTENT_POLICY:
        return t("errors.unsafe")
    if kind is ErrorKind.BAD_REQUEST:
        return t("errors.bad_request")
    name = category_name(category, t)
    retry_at = exc.retry_at if isinstance(exc, AllProvidersFailed) else None
    if retry_at is None and isinstance(exc, ProviderError) and exc.retry_after_s:
        retry_at = retry_at_from(exc.retry_after_s, now)
    if retry_at is not None and retry_at > (now or datetime.now(UTC)):
        return t("errors.busy", category=name, when=relative_time(retry_at, t, tz, now))
    return t("errors.busy_soon", category=name)


def with_outcome(text: str, closed: Closed, t: Translate) -> str:
    """A failure message, and what it meant for the user's credits."""
    if closed.refunded:
        return f"{text}\n{t('outcome.refunded', credits=credits_text(closed.refunded, t))}"
    if closed.charged:
        return f"{text}\n{t('outcome.kept', credits=credits_text(closed.charged, t))}"
    return text
