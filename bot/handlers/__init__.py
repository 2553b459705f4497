"""The routers, in the order they see updates: specific commands first, admin commands, then the
catch-all chat router (plain text goes to the model, unknown commands get a hint). The error router sees
only what a handler or middleware raised, so its place in the list does not matter.

Each module builds a fresh router per call: aiogram attaches a router to one parent only, and a second
Dispatcher in one process (tests, a restart in place) needs routers of its own.
"""

from __future__ import annotations

from aiogram import Router


def routers() -> list[Router]:
    from bot.handlers import admin, balance, cancel, chat, documents, errors, media, model, payments, start

    return [errors.router(), cancel.router(), start.router(), model.router(), balance.router(), payments.router(),
            media.router(), documents.router(), admin.router(), chat.router()]
