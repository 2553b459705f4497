"""Admin figures: /stats [category] [period], /cost <category> [period], /recommended <category> [period].
/stats of every category also shows the period's revenue in Stars, its USD value and the margin.

Handlers are thin: parse and validate the arguments, read the stats repository, format with
`bot.services.reports`. Every handler here is guarded by `IsAdmin` (private chats only); anyone else is
answered by the refusal in `bot.handlers.admin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aiogram import Router
from aiogram.enums import ParseMode
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.filters import IsAdmin
from bot.i18n import Translate
from bot.services.reports import cost_blocks, esc, period_text, recommended_blocks, split_blocks, stats_blocks
from bot.services.revenue import revenue_text
from bot.settings import Settings
from db.periods import PERIOD_NAMES, Period, period_named
from db.repo.revenue import revenue
from db.repo.stats import cost_comparison, provider_stats, request_totals
from db.repo.stats_types import pick_recommended
from providers.types import Category

CATEGORIES = tuple(c.value for c in Category)
CategoryArg = Literal["required", "optional", "refused"]  # a command must, may, or must not name one
MIN_ATTEMPTS = 20  # a recommendation needs this many attempts in the period to mean anything


class BadArgs(Exception):
    """The admin's arguments do not parse; `text` says why and how to write them (HTML)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class Scope:
    category: str | None
    period: Period


def usage(t: Translate, command: str) -> str:
    return t(f"admin.usage.{command}", categories=", ".join(CATEGORIES), periods=", ".join(PERIOD_NAMES))


def parse_scope(raw: str | None, t: Translate, settings: Settings, *, command: str, default_period: str,
                category_required: bool) -> Scope:
    """`[category] [period]` in either order, each at most once; raises BadArgs with the usage."""
    category: str | None = None
    period: str | None = None
    for token in (raw or "").lower().split():
        if token in PERIOD_NAMES and period is None:
            period = token
        elif token in CATEGORIES and category is None:
            category = token
        else:
            guess_period = category is not None or token[:1].isdigit() or token in PERIOD_NAMES
            key = "admin.bad_period" if guess_period else "admin.bad_category"
            raise BadArgs(t(key, value=esc(token), periods=", ".join(PERIOD_NAMES),
                            categories=", ".join(CATEGORIES)) + "\n\n" + usage(t, command))
    if category_required and category is None:
        raise BadArgs(usage(t, command))
    return Scope(category, period_named(period or default_period, settings.tz))


async def read_scope(message: Message, command: CommandObject, t: Translate, settings: Settings, *, name: str,
                     default_period: str, category: CategoryArg) -> Scope | None:
    """The command's scope, or None once the admin has been answered why the arguments do not parse."""
    try:
        scope = parse_scope(command.args, t, settings, command=name, default_period=default_period,
                            category_required=category == "required")
        if category == "refused" and scope.category is not None:
            raise BadArgs(usage(t, name))
    except BadArgs as exc:
        await message.answer(exc.text, parse_mode=ParseMode.HTML)
        return None
    return scope


async def answer_blocks(message: Message, blocks: Sequence[str]) -> None:
    for text in split_blocks(blocks):
        await message.answer(text, parse_mode=ParseMode.HTML)


async def cmd_stats(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                    settings: Settings) -> None:
    scope = await read_scope(message, command, t, settings, name="stats", default_period="today",
                             category="optional")
    if scope is None:
        return
    stats = await provider_stats(session, scope.period, scope.category)
    totals = await request_totals(session, scope.period, scope.category)
    heading = t("admin.stats.title", period=period_text(scope.period, t, settings.tz),
                category=f" · {esc(scope.category)}" if scope.category else "")
    blocks = stats_blocks(stats, totals, heading, t)
    if scope.category is None:  # revenue is not per category: shown beside the spend of them all
        paid = await revenue(session, scope.period)
        if paid.any or settings.credit_packs:
            blocks.append(revenue_text(paid, sum(s.cost_micros for s in stats), settings.stars_usd_rate, t))
    await answer_blocks(message, blocks)


async def cmd_cost(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                   settings: Settings) -> None:
    scope = await read_scope(message, command, t, settings, name="cost", default_period="7d",
                             category="required")
    if scope is None:
        return
    assert scope.category is not None
    ranked = await cost_comparison(session, scope.period, scope.category)
    heading = t("admin.cost.title", category=esc(scope.category), period=period_text(scope.period, t, settings.tz))
    await answer_blocks(message, cost_blocks(ranked, heading, t))


async def cmd_recommended(message: Message, command: CommandObject, t: Translate, session: AsyncSession,
                          settings: Settings) -> None:
    scope = await read_scope(message, command, t, settings, name="recommended", default_period="7d",
                             category="required")
    if scope is None:
        return
    assert scope.category is not None
    ranked = await cost_comparison(session, scope.period, scope.category)
    pick = pick_recommended(ranked, MIN_ATTEMPTS)
    period = period_text(scope.period, t, settings.tz)
    heading = t("admin.recommended.title", category=esc(scope.category), period=period)
    await answer_blocks(message, recommended_blocks(pick, ranked, heading, period, MIN_ATTEMPTS, t))


def router() -> Router:
    """A fresh router for one Dispatcher; `admin.router()` includes it."""
    built = Router(name=__name__)
    built.message.register(cmd_stats, Command("stats"), IsAdmin())
    built.message.register(cmd_cost, Command("cost"), IsAdmin())
    built.message.register(cmd_recommended, Command("recommended"), IsAdmin())
    return built
