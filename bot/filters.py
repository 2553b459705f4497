"""Filters shared by routers. `IsAdmin` guards every admin command.

`ADMIN_IDS` (settings) is the one source of truth. The users middleware copies it into each user's
`is_admin` flag on every update, so the stored flag is never fresher than the settings; reading the
settings directly also keeps the filter correct for an update the middleware has not seen. Without
settings in the workflow data the filter fails closed: nobody is an admin.

Admin figures are shown in a private chat only: in a group every member would read them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from aiogram.enums import ChatType
from aiogram.filters import Filter
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TgUser


class HasAdminIds(Protocol):
    @property
    def admin_ids(self) -> Collection[int]: ...


def is_admin_id(tg_id: int | None, settings: HasAdminIds | None) -> bool:
    return tg_id is not None and settings is not None and tg_id in settings.admin_ids


class IsAdmin(Filter):
    """True for the Telegram users listed in `settings.admin_ids` (by default: in a private chat only)."""

    def __init__(self, private_only: bool = True) -> None:
        self.private_only = private_only

    async def __call__(
        self,
        event: TelegramObject,
        event_from_user: TgUser | None = None,
        event_chat: Chat | None = None,
        settings: HasAdminIds | None = None,
    ) -> bool:
        if self.private_only and (event_chat is None or event_chat.type != ChatType.PRIVATE):
            return False
        return is_admin_id(event_from_user.id if event_from_user else None, settings)
