"""Messages not from a person (an anonymous group admin, a post as a channel, a linked channel's
auto-forward) are ignored before any handler: no person can be charged, answered or made admin for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.core_harness import CoreHarness
from tests.fakes.telegram import CHANNEL_BOT, GROUP_ANONYMOUS_BOT, SERVICE_USER

GROUP = -100555
USER = 2002
CHANNEL = {"id": -100999, "type": "channel", "title": "A channel"}
THE_GROUP = {"id": GROUP, "type": "supergroup", "title": "A group"}
NOT_PEOPLE: list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = [
    (GROUP_ANONYMOUS_BOT, THE_GROUP, {}),  # an admin posting anonymously
    (CHANNEL_BOT, CHANNEL, {}),  # a member posting as their channel
    (SERVICE_USER, CHANNEL, {"is_automatic_forward": True}),  # not a bot, but a channel speaks
    ({"id": 4242, "is_bot": True, "first_name": "Another bot"}, None, {}),  # a bot, no sender_chat
]
COMMANDS = ["/start", "/balance", "/image a cat", "/cancel", "/new", "/model", "/stats", "/grant 2002 5",
            "hello there", "/speak hi", "/video a dog"]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path, admin_ids="1001,1087968824,136817688,777000,4242") as harness:
        yield harness


@pytest.mark.parametrize(("sender", "sender_chat", "extra"), NOT_PEOPLE)
async def test_every_command_from_a_sender_that_is_not_a_person_is_ignored_without_a_crash(
        h: CoreHarness, sender: dict[str, Any], sender_chat: dict[str, Any] | None, extra: dict[str, Any]) -> None:
    for text in COMMANDS:
        update_id = h.tg.push_group_message(GROUP, text, sender=sender, sender_chat=sender_chat, **extra)
        await h.feed(update_id)  # a handler that assumed a person would raise here
    assert [m.plain for m in h.tg.messages(GROUP)] == []
    assert h.rows("SELECT id FROM users") == []  # not even an admin id listed in ADMIN_IDS becomes a user
    assert h.rows("SELECT id FROM requests") == [] and h.first.calls_to("/chat/completions") == []


async def test_a_person_in_the_same_group_is_still_answered(h: CoreHarness) -> None:
    await h.feed(h.tg.push_group_message(GROUP, "/balance", sender=GROUP_ANONYMOUS_BOT, sender_chat=THE_GROUP))
    await h.say_in_group(USER, GROUP, "/balance")
    assert len(h.tg.messages(GROUP)) == 1 and [r["id"] for r in h.rows("SELECT id FROM users")] == [USER]
