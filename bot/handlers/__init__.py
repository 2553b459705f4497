"""The routers, in the order they see updates: specific commands first, admin commands, then the
catch-all chat router (plain text goes to the model, unknown commands get a hint)."""

from __future__ import annotations

from aiogram import Router


def routers() -> list[Router]:
    from bot.handlers import admin, balance, cancel, chat, media, model, start

    ordered = [cancel.router, start.router, model.router, balance.router, media.router, admin.router, chat.router]
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
