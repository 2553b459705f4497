"""Provider alerts to admins: a provider out of quota or with a failing key, told once per incident.

The manager calls `on_alert(Alert)` once per incident (providers/health.py: an incident ends when the
provider serves again or its long cooldown runs out), and a new incident always parks the provider
until a later deadline. The notifier still dedupes per (provider, kind), so an alert delivered twice
(a retried hook, a second manager over the same providers) is told once: a repeat whose deadline is not
later than the one already announced is the same incident.

Several processes (fronts and workers, each with its own manager) may raise the same incident: given
`claims` (bot.shared.once, in Redis when REDIS_URL is set), the first to claim `alert:<provider>:<kind>`
tells the admins, and the claim lasts as long as the provider is parked, so the others stay silent.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import DEFAULT_LANG, Translate, language_for
from bot.services.reports import esc, moment
from bot.services.telegram_retry import with_retry
from bot.settings import Settings
from bot.shared.once import Claims
from db.repo.users import get_user
from providers.health import Alert

# Long opaque strings that look like credentials (sk-..., hf_..., r8_..., bearer tokens). Provider error
# bodies sometimes echo a (partly masked) key; an alert must never carry one into a chat.
_SECRET_LIKE = re.compile(r"\b(?:sk|pk|rk|hf|r8|key|xai|gsk)[-_][A-Za-z0-9_\-*.]{8,}|\b[A-Za-z0-9_\-]{32,}\b")


MIN_CLAIM_S = 60.0  # an incident's claim lasts at least this long, even for a parking already over


def redact_secrets(text: str) -> str:
    return _SECRET_LIKE.sub("[redacted]", text)


async def send_each(chat_ids: Iterable[int], send: Callable[[int], Awaitable[Any]], what: str) -> list[int]:
    """Run `send(chat_id)` for every chat; one chat failing (blocked the bot, gone, flooded) never stops
    the rest. Returns the chats that were reached."""
    reached: list[int] = []
    for chat_id in dict.fromkeys(chat_ids):  # unique, order kept
        try:
            await send(chat_id)
        except TelegramAPIError as exc:
            logger.warning("{} to {} not sent: {}", what, chat_id, type(exc).__name__)
            continue
        reached.append(chat_id)
    return reached


class AlertNotifier:
    """`on_alert` for the provider manager: tells every admin once per incident, each in their language."""

    def __init__(self, bot: Bot, settings: Settings, *, sessions: async_sessionmaker[AsyncSession],
                 claims: Claims | None = None) -> None:
        self.bot = bot
        self.claims = claims
        self.settings = settings
        self.sessions = sessions  # only to find each admin's language
        self._announced: dict[tuple[str, str], datetime] = {}

    async def __call__(self, alert: Alert) -> None:
        key = (alert.provider, str(alert.kind))
        told = self._announced.get(key)
        if told is not None and alert.until <= told:
            logger.debug("alert for {} ({}) already told in this incident", *key)
            return
        self._announced[key] = alert.until  # before any await: a racing duplicate sees it
        if self.claims is not None:
            parked_s = (alert.until - datetime.now(UTC)).total_seconds()
            if not await self.claims.claim(f"alert:{alert.provider}:{alert.kind}", max(MIN_CLAIM_S, parked_s)):
                logger.info("alert for {} ({}) already told by another process", *key)
                return
        message = redact_secrets(alert.message)
        langs = await admin_languages(self.sessions, self.settings.admin_ids)

        async def tell(chat_id: int) -> None:
            text = alert_text(alert, Translate(langs.get(chat_id, DEFAULT_LANG)), self.settings.tz, message)
            # a notice, not an answer: a few tries, at most 30 s per flood wait, no retry on a network error
            await with_retry(lambda: self.bot.send_message(chat_id, text, parse_mode=ParseMode.HTML),
                             attempts=3, max_wait_s=30.0, retry_network=False)

        reached = await send_each(sorted(self.settings.admin_ids), tell, "provider alert")
        logger.info("provider alert {} ({}) told to {} admin(s)", alert.provider, alert.kind, len(reached))


async def admin_languages(sessions: async_sessionmaker[AsyncSession], admin_ids: Iterable[int]) -> dict[int, str]:
    """Each admin's bot language from the users table; admins never seen by the bot are left out."""
    found: dict[int, str] = {}
    try:
        async with sessions() as session:
            for tg_id in admin_ids:
                view = await get_user(session, tg_id)
                if view is not None:
                    found[tg_id] = language_for(view.language)
    except SQLAlchemyError as exc:  # the database being down must not silence an alert
        logger.warning("admin languages unavailable: {}", type(exc).__name__)
    return found


def alert_text(alert: Alert, t: Translate, tz: tzinfo, message: str, now: datetime | None = None) -> str:
    """The alert in `t`'s language; `message` (the provider's words) is already redacted."""
    kind = str(alert.kind)
    key = f"admin.alert.{kind}" if kind in ("quota_exhausted", "auth") else "admin.alert.other"
    return t(key, provider=esc(alert.provider), kind=esc(kind), until=moment(alert.until, tz, now),
             message=esc(message[:500]))
