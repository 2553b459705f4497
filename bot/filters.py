"""Filters shared by routers. `IsAdmin` guards every admin command.

`ADMIN_IDS` (settings) is the one source of truth. The users middleware copies it into each user's
`is_admin` flag on every update, so the stored flag is never fresher than the settings; reading the
settings directly also keeps the filter correct for an update the middleware has not seen. Without
settings in the workflow data the filter fails closed: nobody is an admin.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from aiogram.types import User as TgUser


class HasAdminIds(Protocol):
    @property
    def admin_ids(self) -> Collection[int]: ...


def is_admin_id(tg_id: int | None, settings: HasAdminIds | None) -> bool:
    return tg_id is not None and settings is not None and tg_id in settings.admin_ids


class IsAdmin(Filter):
    """True for the Telegram users listed in `settings.admin_ids`."""

    async def __call__(
        self,
        event: TelegramObject,
        event_from_user: TgUser | None = None,
        settings: HasAdminIds | None = None,
    ) -> bool:
        return is_admin_id(event_from_user.id if event_from_user else None, settings)
