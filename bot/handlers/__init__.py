"""The routers, in the order they see updates: specific commands first, admin commands, then the
catch-all chat router (plain text goes to the model, unknown commands get a hint)."""

from __future__ import annotations

import importlib

from aiogram import Router
from loguru import logger


def routers() -> list[Router]:
    from bot.handlers import balance, cancel, chat, media, model, start

    found = [cancel.router, start.router, model.router, balance.router, media.router]
    try:  # TODO(core): plain import once bot/handlers/admin.py has landed
        found.append(importlib.import_module("bot.handlers.admin").router)
    except ModuleNotFoundError as exc:
        if exc.name != "bot.handlers.admin":
            raise
        logger.warning("admin commands are not available (bot.handlers.admin is missing)")
    ordered = [*found, chat.router]
    for router in ordered:
        _detach(router)
    return ordered


def _detach(router: Router) -> None:
    """Free a module-level router from a previous Dispatcher, so a second app in one process (tests)
    can include it; aiogram refuses to attach a router twice."""
    parent = router.parent_router
    if parent is not None:
        parent.sub_routers.remove(router)
        router._parent_router = None
