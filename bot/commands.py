"""The bot's commands, in one place: the menu every user sees (`USER_COMMANDS`, set by `bot.app`) and the
admins' (`ADMIN_COMMANDS`, refused to anyone else by `bot.handlers.admin`).

In a group, a bare `/cmd` names no bot: Telegram hands it to every bot there. It is this bot's only when
it is one of `BOT_COMMANDS` (`bot.addressing`); any other is left to the bots it may be for, and costs
nothing here. A router that handles a new command must add it here (tests/bot/test_groups.py checks).
"""

from __future__ import annotations

USER_COMMANDS = ("start", "help", "new", "model", "image", "edit", "video", "tts", "balance", "buy", "cancel",
                 "language", "paysupport")
ADMIN_COMMANDS = ("stats", "providers", "cost", "recommended", "grant", "user", "digest", "export", "refund",
                  "payments")
BOT_COMMANDS = frozenset(USER_COMMANDS + ADMIN_COMMANDS)
