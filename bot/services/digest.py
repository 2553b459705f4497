"""The daily digest: yesterday's figures from the same stats queries as /stats, with a chart, to every admin;
the revenue in Stars beside the spend, with the margin, when credits are sold.

Figures are read once; the text and the chart are rendered once per language the admins speak. The chart
is drawn in a worker thread (matplotlib is CPU-bound). Each admin is sent to on their own: one who blocked
the bot is logged and skipped, the others still get theirs.

Every process schedules the digest; the scheduled run claims `digest:<date>` first (bot.shared.once, in
Redis when REDIS_URL is set), so only one of them sends it. /digest (on demand) never claims.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.types import BufferedInputFile
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import DEFAULT_LANG, Translate
from bot.services.alerts import admin_languages, send_each
from bot.services.chart import ProviderPoint, spend_and_success_png
from bot.services.reports import (
    CAPTION_LIMIT,
    esc,
    moment,
    pct,
    period_text,
    pre_table,
    split_blocks,
    usd,
    user_name,
)
from bot.services.revenue import revenue_text
from bot.services.telegram_retry import with_retry
from bot.services.textfmt import u16len
from bot.settings import Settings
from bot.shared.once import Claims
from db.periods import Period, period_named
from db.repo.revenue import Revenue, revenue
from db.repo.stats import digest, provider_stats
from db.repo.stats_types import Digest, ProviderStats
from providers.manager import ProviderManager

JOB_ID = "daily_digest"
CLAIM_TTL_S = 2 * 86_400.0  # longer than the misfire grace: a late run of any process finds the claim
TOP_USERS = 10


@dataclass(frozen=True, slots=True)
class DigestData:
    digest: Digest
    per_category: dict[str, list[ProviderStats]]  # every provider that was tried, failures included
    attention: list[tuple[str, str, datetime | None]]  # (provider, why, until) parked or disabled now
    revenue: Revenue  # Stars paid and refunded in the period


async def load_digest(session: AsyncSession, period: Period, manager: ProviderManager) -> DigestData:
    found = await digest(session, period, top=TOP_USERS)
    # Digest.by_category keeps only providers that served something (a cost ranking); the digest must
    # also show a provider that only failed, so each category is read in full.
    per_category = {cat: await provider_stats(session, period, cat)
                    for cat in sorted({*found.by_category, *found.totals_by_category})}
    return DigestData(found, {c: s for c, s in per_category.items() if s}, _attention(manager),
                      await revenue(session, period))


def _attention(manager: ProviderManager) -> list[tuple[str, str, datetime | None]]:
    out: list[tuple[str, str, datetime | None]] = []
    for item in manager.health_snapshot():
        if not item.enabled:
            out.append((item.name, item.disabled_reason or "disabled", None))
            continue
        parked = [h for h in item.categories.values() if h.reason in ("quota_exhausted", "auth")]
        if parked:
            out.append((item.name, str(parked[0].reason), max(h.cooldown_until or datetime.min.replace(tzinfo=UTC)
                                                              for h in parked)))
    return out


def digest_blocks(data: DigestData, t: Translate, settings: Settings) -> list[str]:
    d, tz = data.digest, settings.tz
    totals = d.totals
    blocks = [t("admin.digest.title", period=period_text(d.period, t, tz)) + "\n" +
              t("admin.digest.totals", requests=totals.requests, served=totals.served, failed=totals.failed,
                canceled=totals.canceled, refused=totals.refused, spend=usd(totals.cost_micros)) + "\n" +
              t("admin.digest.fallback", rate=pct(totals.fallback_rate if totals.served else None))]
    if data.revenue.any or settings.credit_packs:
        blocks[0] += "\n" + revenue_text(data.revenue, totals.cost_micros, settings.stars_usd_rate, t)
    if not d.providers:
        return [*blocks, t("admin.no_data")]
    blocks.append(t("admin.digest.by_provider") + "\n" + pre_table(
        [t("admin.col.provider"), t("admin.col.requests"), t("admin.col.rate"), t("admin.col.spend"),
         t("admin.col.avg_cost")],
        [[s.provider, str(s.attempts), pct(s.success_rate), usd(s.cost_micros), usd(s.avg_cost_micros)]
         for s in d.providers]))
    rows = [[f"{cat}/{s.provider}", str(s.attempts), pct(s.success_rate), usd(s.cost_micros)]
            for cat, stats in data.per_category.items() for s in stats]
    blocks.append(t("admin.digest.by_category") + "\n" + pre_table(
        [f"{t('admin.col.category')}/{t('admin.col.provider')}", t("admin.col.requests"), t("admin.col.rate"),
         t("admin.col.spend")], rows, max_first=22))
    picks = [f"{esc(cat)}: <b>{esc(name)}</b>" for cat, name in d.recommended.items() if name]
    if picks:
        blocks.append(t("admin.digest.recommended", picks=", ".join(picks)))
    if d.top_users:
        blocks.append(t("admin.digest.top_users") + "\n" + pre_table(
            [t("admin.col.user"), t("admin.col.requests"), t("admin.col.credits"), t("admin.col.spend")],
            [[user_name(u.tg_id, u.username, u.first_name), str(u.requests), str(u.credits), usd(u.cost_micros)]
             for u in d.top_users], max_first=18))
    if data.attention:
        blocks.append(t("admin.digest.attention") + "\n" + "\n".join(
            f"• <b>{esc(name)}</b>: {esc(why)}" + (f", {moment(until, tz)}" if until else "")
            for name, why, until in data.attention))
    return blocks


def chart_png(data: DigestData, t: Translate, settings: Settings) -> bytes:
    points = [ProviderPoint(s.provider, s.cost_micros, s.success_rate if s.attempts else None)
              for s in data.digest.providers]
    # The chart is an image, not HTML: no entities in its title
    title = html.unescape(t("admin.digest.chart_title", period=period_text(data.digest.period, t, settings.tz)))
    return spend_and_success_png(points, title=title)


async def _render(data: DigestData, t: Translate, settings: Settings) -> tuple[str, list[str], bytes]:
    """(caption, messages after the photo, PNG): all of it as the caption when it fits, else the heading."""
    png = await asyncio.to_thread(chart_png, data, t, settings)
    blocks = digest_blocks(data, t, settings)
    whole = "\n\n".join(blocks)
    if u16len(whole) <= CAPTION_LIMIT:  # HTML is never shorter than the UTF-16 text Telegram counts
        return whole, [], png
    if u16len(blocks[0]) <= CAPTION_LIMIT:
        return blocks[0], split_blocks(blocks[1:]), png
    return "", split_blocks(blocks), png


async def send_digest(bot: Bot, sessions: async_sessionmaker[AsyncSession], settings: Settings,
                      manager: ProviderManager, period: Period | None = None,
                      chat_ids: Iterable[int] | None = None, once: Claims | None = None) -> list[int]:
    """Send the digest (yesterday by default) to `chat_ids` (every admin by default); the chats reached.
    With `once` (the scheduled run), only if no process has claimed this period's digest yet."""
    period = period or period_named("yesterday", settings.tz)
    if once is not None and not await once.claim(digest_claim(period, settings), CLAIM_TTL_S):
        logger.info("digest for {} already sent by another process", period.name or period.start.date())
        return []
    targets = list(dict.fromkeys(settings.admin_ids if chat_ids is None else chat_ids))
    async with sessions() as session:
        data = await load_digest(session, period, manager)
    langs = await admin_languages(sessions, targets)
    rendered = {lang: await _render(data, Translate(lang), settings)
                for lang in sorted({langs.get(c, DEFAULT_LANG) for c in targets})}
    filename = f"digest-{period.start.astimezone(settings.tz).date().isoformat()}.png"

    async def deliver(chat_id: int) -> None:
        caption, messages, png = rendered[langs.get(chat_id, DEFAULT_LANG)]
        photo = BufferedInputFile(png, filename=filename)
        # as the provider alerts: a few tries, at most 30 s per flood wait, no retry on a network error
        await with_retry(lambda: bot.send_photo(chat_id, photo, caption=caption, parse_mode=ParseMode.HTML),
                         attempts=3, max_wait_s=30.0, retry_network=False)
        for text in messages:
            await with_retry(partial(bot.send_message, chat_id, text, parse_mode=ParseMode.HTML),
                             attempts=3, max_wait_s=30.0, retry_network=False)

    reached = await send_each(targets, deliver, "digest")
    logger.info("digest for {} sent to {} of {} admin(s)", period.name or period.start.date(), len(reached),
                len(targets))
    return reached


def digest_claim(period: Period, settings: Settings) -> str:
    return f"digest:{period.start.astimezone(settings.tz).date().isoformat()}"


def schedule_digest(scheduler: AsyncIOScheduler, bot: Bot, sessions: async_sessionmaker[AsyncSession],
                    settings: Settings, manager: ProviderManager, once: Claims | None = None) -> None:
    """Every day at DIGEST_TIME in TIMEZONE. A bot that was down at that moment sends it within the hour."""
    trigger = CronTrigger(hour=settings.digest_time.hour, minute=settings.digest_time.minute,
                          timezone=settings.tz)
    if scheduler.get_job(JOB_ID) is not None:  # a second call (tests, a rebuilt app) replaces, never doubles
        scheduler.remove_job(JOB_ID)
    scheduler.add_job(send_digest, trigger, id=JOB_ID, replace_existing=True, coalesce=True,
                      misfire_grace_time=3600, max_instances=1,
                      kwargs={"bot": bot, "sessions": sessions, "settings": settings, "manager": manager,
                              "once": once})
    logger.info("daily digest scheduled at {} {}", settings.digest_time.strftime("%H:%M"), settings.timezone)
