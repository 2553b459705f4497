"""Files users send, downloaded from Telegram within a size cap (photos to edit or to look at, voice)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from aiogram import Bot

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer is 3.12+

DOWNLOAD_LIMIT = 20 * 1024 * 1024  # the Bot API's getFile limit


class TooBig(Exception):
    """The file is larger than the download cap."""


class _CappedBuffer(io.BytesIO):
    """A BytesIO that refuses to grow past `limit`: the download stops at the chunk that crosses it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: Buffer) -> int:
        if self.tell() + memoryview(data).nbytes > self.limit:
            raise TooBig
        return super().write(data)


async def download_capped(bot: Bot, file_id: str, limit: int) -> bytes:
    """The file's bytes, refused (TooBig) past `limit` even when Telegram does not say its size.

    getFile's file_size is checked first; when it is missing, the download itself is counted chunk by
    chunk, so a file larger than announced (or never announced) cannot fill the memory.
    """
    file = await bot.get_file(file_id)
    if file.file_size is not None and file.file_size > limit:
        raise TooBig
    if not file.file_path:
        return b""
    buffer = _CappedBuffer(limit)
    await bot.download_file(file.file_path, destination=buffer)
    return buffer.getvalue()
