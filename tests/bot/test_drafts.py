"""A streamed answer in a private chat as a native draft (sendMessageDraft), against the fake Bot API:
drafts while it grows, then the messages sent once; full messages of a long answer sent as they fill; the
gate asked before the first draft and told after it; an edited reply where drafts are refused; and
which streamer a chat gets."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiogram import Bot

from bot.services.delivery import TextStreamer
from bot.services.drafts import DraftStreamer, is_private
from bot.services.textfmt import html_to_plain, split_html
from tests.bot.core_harness import CoreHarness
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.asyncio(loop_scope="module")
_chats = itertools.count(5_000_777, 10)
WORDS = ["Hello", " **world**", ", how", " are", " you", " today?"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path_factory.mktemp("drafts")) as harness:
        yield harness


@pytest.fixture
def fake(h: CoreHarness) -> AsyncIterator[FakeTelegram]:
    h.tg.drafts_supported = True
    yield h.tg
    h.tg.drafts_supported = True


@pytest.fixture
def bot(h: CoreHarness) -> Bot:
    return h.live.bot


@pytest.fixture
def chat(fake: FakeTelegram) -> int:
    chat_id = next(_chats)
    fake.remember_user(chat_id, "Ann", "en", None, None)
    return chat_id


class Gate:
    def __init__(self, fake: FakeTelegram, chat: int) -> None:
        self.fake, self.chat = fake, chat
        self.calls: list[tuple[str, int]] = []  # (hook, drafts and messages seen by then)

    def seen(self) -> int:
        return len(self.fake.drafts[self.chat]) + len(self.fake.sent[self.chat])

    async def before(self) -> None:
        self.calls.append(("before", self.seen()))

    async def after(self) -> None:
        self.calls.append(("after", self.seen()))


async def _stream(streamer: TextStreamer, words: list[str]) -> str:
    text = ""
    for word in words:
        text += word
        await streamer.update(text)
    await streamer.finish(text)
    return text


async def test_a_private_stream_shows_drafts_then_sends_one_message(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    gate = Gate(fake, chat)
    await _stream(DraftStreamer(bot, chat, interval=0.0, before_first=gate.before, after_first=gate.after), WORDS)
    drafts = fake.drafts[chat]
    assert [d.plain for d in drafts] == ["Hello", "Hello world", "Hello world, how", "Hello world, how are",
                                         "Hello world, how are you", "Hello world, how are you today?"]
    assert len({d.draft_id for d in drafts}) == 1 and drafts[0].draft_id != 0  # one draft, animated
    [message] = fake.messages(chat)
    assert message.plain == "Hello world, how are you today?" and message.edits == 0
    assert message.entities and message.entities[0]["type"] == "bold"
    assert gate.calls == [("before", 0), ("after", 1)]  # asked before the first draft, told once after it


async def test_a_long_answer_sends_each_full_message_as_it_fills(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    text = "".join(f"Line {i}: **bold** and `code` & <more> words here.\n" for i in range(300))
    streamer = DraftStreamer(bot, chat, interval=0.0)
    for end in range(700, len(text), 700):
        await streamer.update(text[:end])
    sent_while_streaming = len(fake.messages(chat))
    await streamer.finish(text)
    messages = fake.messages(chat)
    assert [m.plain for m in messages] == [html_to_plain(p) for p in split_html(text)]
    assert 2 <= sent_while_streaming < len(messages)  # the full ones went out before the end
    assert all(m.edits == 0 for m in messages)
    assert all(len(d.plain) <= 4096 for d in fake.drafts[chat])
    assert len({d.draft_id for d in fake.drafts[chat]}) >= 3  # a draft of its own for each message


async def test_where_drafts_are_refused_the_answer_is_edited_in_place(fake: FakeTelegram, bot: Bot,
                                                                      chat: int) -> None:
    fake.drafts_supported = False  # a Bot API server from before sendMessageDraft
    gate = Gate(fake, chat)
    streamer = DraftStreamer(bot, chat, interval=0.0, before_first=gate.before, after_first=gate.after)
    await _stream(streamer, WORDS)
    assert not streamer.drafting and fake.drafts[chat] == []
    [message] = fake.messages(chat)
    assert message.plain == "Hello world, how are you today?" and message.edits >= 1
    assert [hook for hook, _ in gate.calls] == ["before", "after"]


async def test_a_quick_answer_is_one_message_and_no_draft(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    gate = Gate(fake, chat)
    streamer = DraftStreamer(bot, chat, interval=1.0, first_after=0.3, before_first=gate.before,
                             after_first=gate.after)
    await _stream(streamer, ["Hi", " there"])  # done within first_after: nothing shown before the end
    assert fake.drafts[chat] == [] and [m.plain for m in fake.messages(chat)] == ["Hi there"]
    assert gate.calls == [("before", 0), ("after", 1)]


async def test_only_private_chats_have_drafts() -> None:
    assert is_private(42) and not is_private(-42) and not is_private(-1001234567890)
