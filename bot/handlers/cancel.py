"""/cancel: stop the user's running request and refund it (the request's own task does the refund)."""

from __future__ import annotations

import asyncio

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.i18n import Translate
from bot.services.failures import credits_text
from bot.services.jobs import JobRegistry
from db.repo.users import UserView

SETTLE_S = 15.0  # how long to wait for the cancelled task to refund before answering anyway


async def cmd_cancel(message: Message, user: UserView, t: Translate, jobs: JobRegistry) -> None:
    job = jobs.cancel(user.tg_id)
    if job is None:
        await message.answer(t("cancel.nothing"))
        return
    if job.task is not None:
        await asyncio.wait({job.task}, timeout=SETTLE_S)
    await message.answer(t("cancel.done", credits=credits_text(job.credits, t)))


def router() -> Router:
    """A fresh router for one Dispatcher."""
    built = Router(name=__name__)
    built.message.register(cmd_cancel, Command("cancel"))
    return built
