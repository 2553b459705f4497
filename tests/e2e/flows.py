"""Small steps the end-to-end tests share: ask and wait, settle, poll the database."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tests.fakes.base import Call
from tests.fakes.openai import FakeOpenAI
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_state import SentMessage

T = TypeVar("T")
REPLY_TIMEOUT = 20.0


async def ask(tg: FakeTelegram, chat_id: int, text: str, *, count: int = 1,
              within_s: float = REPLY_TIMEOUT) -> list[SentMessage]:
    """Send `text` as the user and return the first `count` messages the bot sent after it."""
    before = len(tg.sent.get(chat_id, []))
    tg.push_message(chat_id, text)
    await tg.wait_for(lambda: len(tg.sent.get(chat_id, [])) >= before + count, within_s)
    return tg.sent[chat_id][before:before + count]


async def settle(tg: FakeTelegram, quiet_s: float = 0.7, cap_s: float = 15.0) -> None:
    """Wait until the bot made no Bot API call other than getUpdates for `quiet_s` (it is idle)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cap_s

    def busy() -> int:
        return sum(1 for c in tg.calls if not c.path.lower().endswith("/getupdates"))

    while loop.time() < deadline:
        seen = busy()
        await asyncio.sleep(quiet_s)
        if busy() == seen:
            return


async def eventually(probe: Callable[[], T | Awaitable[T]], within_s: float = REPLY_TIMEOUT,
                     what: str = "condition") -> T:
    """Poll something that cannot notify us (a database) until it is truthy; `probe` may be async."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        got = probe()
        value: T = await got if inspect.isawaitable(got) else got  # type: ignore[assignment]
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not met within {within_s}s (last value {value!r})")
        await asyncio.sleep(0.05)


def all_text(tg: FakeTelegram, chat_id: int) -> str:
    """Every text, caption and edit the bot ever showed in a chat (deleted messages included)."""
    return "\n".join(t for m in tg.sent.get(chat_id, []) for t in m.history)


def chat_calls(fake: FakeOpenAI, last_user_text: str) -> list[Call]:
    """The chat completion calls whose last message is this user text (users of a shared bot differ)."""
    return [c for c in fake.calls_to("/chat/completions")
            if isinstance(c.json, dict) and c.json.get("messages")
            and c.json["messages"][-1].get("content") == last_user_text]
