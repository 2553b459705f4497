"""Photos, voice messages and image files in groups: served as in a private chat when addressed to the bot
(a caption that mentions it, a reply to its message, `/edit` for it), asked as group messages are (signed
with the sender's name, a member's message replied to quoted), answered in the topic they were asked in,
paid by the sender; unaddressed ones cost nothing (no reply, no user row, no request row, no download).
Fed through the real dispatcher (CoreHarness), with the fake Bot API as Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.bot.core_harness import FIRST_REPLY, SECOND_REPLY, CoreHarness
from tests.fakes.openai import PNG_1X1
from tests.fakes.telegram import GroupPlace

GROUP = -100700
ALICE, BOB, CAROL = 3101, 3102, 3103
BOT = "@fake_ai_bot"
EYES_CREDITS = 2  # the harness's label that can see; "Fast chat" (1 credit) cannot


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        yield harness


def _last_turn(h: CoreHarness, fake: Any) -> Any:
    return fake.calls_to("/chat/completions")[-1].json["messages"][-1]["content"]


async def _bot_answer(h: CoreHarness, thread_id: int | None = None) -> int:
    """The bot answers a member's mention; the id of its answer."""
    await h.feed(h.tg.push_group_text(GROUP, CAROL, f"{BOT} hi", thread_id=thread_id))
    return h.tg.messages(GROUP)[-1].message_id


async def test_a_photo_whose_caption_mentions_the_bot_is_seen_and_answered_in_its_topic(h: CoreHarness) -> None:
    place = GroupPlace(GROUP, thread_id=7)
    await h.feed(h.tg.push_photo(ALICE, PNG_1X1, f"{BOT} what is this?", first_name="Alice", in_group=place))
    notice, answer = h.tg.messages(GROUP)
    assert "Fast chat can't see images, so Eyes answers this one" in notice.plain
    assert answer.plain == SECOND_REPLY and answer.payload["reply_to_message"]["from"]["id"] == ALICE
    assert [m.payload.get("message_thread_id") for m in (notice, answer)] == [7, 7]
    text, image = _last_turn(h, h.second)
    assert text == {"type": "text", "text": "Alice: what is this?"}  # the bot's name out, signed
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,iVBORw0KGgo")
    [request] = h.requests(ALICE)
    assert (request["chat_id"], request["status"], request["label"]) == (GROUP, "served", "Eyes")
    assert h.credits(ALICE) == h.settings.free_credits - EYES_CREDITS
    [turn] = h.rows("SELECT chat_id, thread_id FROM chat_history WHERE role = 'user'")
    assert (turn["chat_id"], turn["thread_id"]) == (GROUP, 7)  # the topic's conversation


async def test_a_photo_replying_to_the_bot_is_described_and_its_sender_pays(h: CoreHarness) -> None:
    answer = await _bot_answer(h)
    await h.feed(h.tg.push_photo(BOB, PNG_1X1, first_name="Bob", in_group=GroupPlace(GROUP, reply_to=answer)))
    assert h.tg.messages(GROUP)[-1].plain == SECOND_REPLY
    text, _image = _last_turn(h, h.second)
    assert text["text"] == "Bob: Describe this image."
    assert h.credits(BOB) == h.settings.free_credits - EYES_CREDITS and len(h.requests(BOB)) == 1


async def test_a_voice_message_replying_to_the_bot_is_transcribed_and_answered_signed(h: CoreHarness) -> None:
    answer = await _bot_answer(h, thread_id=5)
    h.first.transcript = "what time is it"
    update_id = h.tg.push_voice(BOB, b"OggS voice", duration=4, first_name="Bob",
                                in_group=GroupPlace(GROUP, reply_to=answer, thread_id=5))
    await h.feed(update_id)
    heard, reply = h.tg.messages(GROUP)[-2:]
    assert "what time is it" in heard.plain and reply.plain == FIRST_REPLY
    assert [m.payload.get("message_thread_id") for m in (heard, reply)] == [5, 5]
    assert _last_turn(h, h.first) == "Bob: what time is it"
    [request] = h.requests(BOB)
    assert (request["chat_id"], request["status"]) == (GROUP, "served")
    assert h.credits(BOB) == h.settings.free_credits - 2  # the chat label's credit and the transcription's


async def test_an_image_file_addressed_to_the_bot_is_a_photo_not_a_refused_document(h: CoreHarness) -> None:
    await h.feed(h.tg.push_document(ALICE, PNG_1X1, "sky.png", "image/png", f"{BOT} what colour?", group_id=GROUP))
    assert h.tg.messages(GROUP)[-1].plain == SECOND_REPLY
    text, image = _last_turn(h, h.second)
    assert text["text"] == "Tester: what colour?" and image["image_url"]["url"].startswith("data:image/png")


async def test_edit_with_a_photo_in_a_group(h: CoreHarness) -> None:
    topic = GroupPlace(GROUP, thread_id=4)
    await h.feed(h.tg.push_photo(ALICE, PNG_1X1, f"/edit{BOT} inpaint a red hat", in_group=topic))
    member_photo = h.tg.push_photo(BOB, PNG_1X1, in_group=GroupPlace(GROUP))  # not for the bot: ignored
    await h.feed(member_photo)
    photo_id = h.tg._update_log[member_photo]["message"]["message_id"]
    await h.feed(h.tg.push_group_text(GROUP, CAROL, "/edit remove background", reply_to=photo_id))
    first, second = h.first.calls_to("/images/edits")
    assert first.form["image"] == PNG_1X1 and first.form["prompt"] == "a red hat"
    assert second.form["image"] == PNG_1X1
    assert [m.payload.get("message_thread_id") for m in h.tg.media(GROUP, "photo")] == [4, None]
    assert [r["status"] for r in h.requests(ALICE) + h.requests(CAROL)] == ["served", "served"]
    assert h.requests(BOB) == []


async def test_unaddressed_photos_voice_and_image_files_cost_nothing(h: CoreHarness) -> None:
    chatter = h.tg.push_group_text(GROUP, BOB, "look at these")
    member = h.tg._update_log[chatter]["message"]["message_id"]
    pushed = [
        chatter,
        h.tg.push_photo(CAROL, PNG_1X1, in_group=GroupPlace(GROUP)),
        h.tg.push_photo(CAROL, PNG_1X1, "@someone_else nice, isn't it?", in_group=GroupPlace(GROUP, thread_id=3)),
        h.tg.push_photo(CAROL, PNG_1X1, "/edit@other_bot upscale", in_group=GroupPlace(GROUP)),
        h.tg.push_voice(CAROL, b"OggS voice", duration=3, in_group=GroupPlace(GROUP, reply_to=member)),
        h.tg.push_document(CAROL, PNG_1X1, "cat.png", "image/png", "my cat", group_id=GROUP),
    ]
    for update_id in pushed:
        await h.feed(update_id)
    assert h.tg.messages(GROUP) == []
    assert h.rows("SELECT id FROM users WHERE id = ?", CAROL) == []
    assert h.tg.downloads == [] and h.first.calls == [] and h.second.calls == []
