"""The last word on an update that failed: whatever a handler or middleware raised and did not handle.

One ERROR line with the traceback, bound to the update and the user, and a short apology to the user that
carries a reference also in that line, so what a user reports leads to its traceback. The generation path
answers its own failures (with the request id as reference); this catches the rest (admin commands, a
database error in /balance, a bug). The reply itself never raises: the user may have blocked the bot.
"""

from __future__ import annotations

import secrets

from aiogram import Bot, Router
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ErrorEvent, Update, User
from loguru import logger

from bot.i18n import Translate, language_for


async def on_error(event: ErrorEvent, bot: Bot, t: Translate | None = None,
                   event_from_user: User | None = None) -> None:
    """Log the failure and tell the user; returning marks the error handled, so aiogram logs nothing more."""
    update, exc = event.update, event.exception
    sender, chat_id = _origin(update)
    user = event_from_user or sender
    user_id = user.id if user is not None else None
    log = logger.bind(update_id=update.update_id, user_id=user_id)
    if isinstance(exc, TelegramForbiddenError):  # the user blocked the bot while we answered: nothing to fix
        log.info("update {}: user {} cannot be answered: {}", update.update_id, user_id, exc.message)
        return
    ref = secrets.token_hex(3)  # short enough to read out; in the log line too, to find the traceback
    log.bind(ref=ref).opt(exception=exc).error("update {} from user {} failed (ref {}): {}", update.update_id,
                                               user_id, ref, type(exc).__name__)
    if chat_id is None:
        return
    # `t` comes from the user middleware; an error before it ran falls back to the Telegram user's language
    translate = t or Translate(language_for(user.language_code if user is not None else None))
    try:
        # the string is HTML whatever the Bot's default parse mode (a Bot built elsewhere may have none)
        await bot.send_message(chat_id, translate("errors.unexpected", ref=ref), parse_mode=ParseMode.HTML)
    except TelegramAPIError as reply_exc:
        log.info("error reply (ref {}) to chat {} not sent: {}", ref, chat_id, type(reply_exc).__name__)


def _origin(update: Update) -> tuple[User | None, int | None]:
    """Who sent the update and the chat to answer in: only messages and button taps get a reply."""
    message = update.message or update.edited_message
    if message is not None:
        return message.from_user, message.chat.id
    query = update.callback_query
    if query is not None:
        return query.from_user, query.message.chat.id if query.message is not None else query.from_user.id
    return None, None


def router() -> Router:
    """A fresh router for one Dispatcher, with only the error handler: it sees no ordinary update."""
    built = Router(name=__name__)
    built.errors.register(on_error)
    return built
