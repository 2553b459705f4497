"""Outer middlewares on every update, one job each, registered in this order:

    group addressing (in groups, only what is for the bot goes on: the chatter between members costs
    nothing) -> dedup -> throttling -> db session -> user (upsert; gives handlers `user`, `t`)
"""

from __future__ import annotations

from aiogram import Dispatcher

from bot.middlewares.addressing import GroupAddressing
from bot.middlewares.dedup import UpdateDedup
from bot.middlewares.session import DbSession
from bot.middlewares.throttling import Throttling
from bot.middlewares.user import UserContext
from bot.settings import Settings
from bot.shared import Shared

__all__ = ["DbSession", "GroupAddressing", "Throttling", "UpdateDedup", "UserContext", "setup_middlewares"]


def setup_middlewares(dp: Dispatcher, settings: Settings, shared: Shared | None = None) -> None:
    """`shared`: the seen update ids and flood counts every process shares (bot.shared); None: local ones."""
    dp.update.outer_middleware(GroupAddressing())
    dp.update.outer_middleware(UpdateDedup(seen=shared.seen if shared else None))
    dp.update.outer_middleware(Throttling(settings.throttle_rate, settings.throttle_window,
                                          gate=shared.flood if shared else None))
    dp.update.outer_middleware(DbSession())
    dp.update.outer_middleware(UserContext())
