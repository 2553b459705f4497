"""Delivery against the fake Bot API: streamed edits, retry_after, splitting, plain fallback, media.

Sent with the app's own Bot (as `python -m bot` builds it: HTML by default); one app serves the whole
module, each test in a chat of its own.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from aiogram import Bot
from aiohttp import web
from PIL import Image

from bot.services.delivery import MediaFetchError, TextStreamer, media_bytes, send_media
from bot.services.progress import ProgressMessage, chat_action
from bot.services.textfmt import html_to_plain, plain_text, split_html
from providers.outbound import OutboundPolicy, origins
from providers.types import Media
from tests.bot.core_harness import CoreHarness
from tests.fakes.base import FakeServer
from tests.fakes.telegram import FakeTelegram

pytestmark = pytest.mark.asyncio(loop_scope="module")
_chats = itertools.count(777, 10)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (0, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def h(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path_factory.mktemp("delivery")) as harness:
        yield harness


@pytest.fixture
def fake(h: CoreHarness) -> FakeTelegram:
    return h.tg


@pytest.fixture
def bot(h: CoreHarness) -> Bot:
    return h.live.bot


@pytest.fixture
def chat(fake: FakeTelegram) -> int:
    """A chat no other test in the module has written to."""
    chat_id = next(_chats)
    fake.remember_user(chat_id, "Ann", "en", None, None)
    return chat_id


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_stream_edits_one_message_and_ends_with_the_full_text(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    clock = Clock()
    streamer = TextStreamer(bot, chat, interval=1.0, clock=clock)
    text = ""
    for word in ["Hello", " **world**", ", how", " are", " you?"]:
        text += word
        await streamer.update(text)
        clock.now += 0.6  # every other delta is within the interval and must not cause an edit
    await streamer.finish(text)
    [message] = fake.messages(chat)
    assert message.plain == "Hello world, how are you?"
    assert message.entities and message.entities[0]["type"] == "bold"
    assert 1 <= message.edits <= 3  # throttled: fewer edits than deltas, but it did grow in place


async def test_retry_after_skips_edits_and_never_loses_the_final_text(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    clock = Clock()
    streamer = TextStreamer(bot, chat, interval=0.0, clock=clock)
    await streamer.update("first")
    fake.rate_limit("editMessageText", times=1, retry_after=1)
    await streamer.update("first second")  # 429: blocked for a second
    edits_before = len(fake.calls_of("editMessageText"))
    await streamer.update("first second third")  # skipped, still blocked (the clock has not moved)
    assert len(fake.calls_of("editMessageText")) == edits_before
    fake.rate_limit("editMessageText", times=1, retry_after=1)  # and the final edit is refused once more
    await streamer.finish("first second third fourth")
    assert fake.last_text(chat) == "first second third fourth"
    assert len(fake.messages(chat)) == 1


async def test_long_answer_continues_in_new_messages_without_losing_text(fake: FakeTelegram, bot: Bot,
                                                                      chat: int) -> None:
    text = "```python\n" + "\n".join(f"print('line {i}')  # <{i}> & more" for i in range(400)) + "\n```\nDone."
    streamer = TextStreamer(bot, chat, interval=0.0)
    await streamer.update(text[:5000])
    await streamer.finish(text)
    messages = fake.messages(chat)
    assert len(messages) >= 4
    assert "".join(m.plain for m in messages).replace("\n", "") == plain_text(text).replace("\n", "")
    assert all(m.entities and m.entities[0]["type"] == "pre" for m in messages[:-1])


async def test_a_full_message_of_a_streamed_answer_is_left_alone(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    text = "".join(f"Line {i}: **bold** and `code` & <more> words here.\n" for i in range(300))
    streamer = TextStreamer(bot, chat, interval=0.0)
    for end in range(140, len(text), 140):
        await streamer.update(text[:end])
    await streamer.finish(text)
    messages = fake.messages(chat)
    assert [m.plain for m in messages] == [html_to_plain(p) for p in split_html(text)]
    # each message is edited while it is the open end, then never again: not once per later delta
    assert all(m.edits <= 4096 // 140 + 2 for m in messages)


async def test_unparsable_part_is_resent_as_plain_text(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    fake.fail_next(400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: can't parse entities: Unsupported start tag"},
                   path_contains="sendMessage")
    streamer = TextStreamer(bot, chat, reply_to=None)
    await streamer.finish("a **b** <c>")
    [message] = fake.messages(chat)
    assert message.plain == "a b <c>" and message.parse_mode is None


async def test_media_upload_kinds(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    await send_media(bot, chat, png(), "image/png", caption="<i>a fox</i>")
    await send_media(bot, chat, b"ID3fake-mp3", "audio/mpeg")
    await send_media(bot, chat, b"RIFFfake-wav", "audio/wav")
    await send_media(bot, chat, b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    await send_media(bot, chat, png(), "image/png", as_document=True)
    kinds = [m.media_kind for m in fake.media(chat)]
    assert kinds == ["photo", "voice", "audio", "video", "document"]
    assert fake.media(chat)[0].plain == "a fox"


async def test_photo_telegram_refuses_goes_as_a_document(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    await send_media(bot, chat, b"not an image at all", "image/png")
    assert [m.media_kind for m in fake.media(chat)] == ["document"]


class FileHost(FakeServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{name}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        _, scripted = await self.pre(request)
        if scripted is not None:
            return scripted
        size = int(request.match_info["name"].split(".")[0])
        return web.Response(body=b"x" * size, content_type="image/png")


async def test_media_bytes_downloads_with_a_size_cap() -> None:
    async with FileHost() as host, httpx.AsyncClient() as client:
        policy = OutboundPolicy(origins([host.url]))  # loopback is fetched only as a configured origin
        with pytest.raises(MediaFetchError, match="plain http"):
            await media_bytes(Media("image/png", url=f"{host.url}/100.png"), client, 1000)
        assert await media_bytes(Media("image/png", url=f"{host.url}/100.png"), client, 1000,
                                 policy=policy) == b"x" * 100
        with pytest.raises(MediaFetchError, match="over the cap"):
            await media_bytes(Media("image/png", url=f"{host.url}/5000.png"), client, 1000, policy=policy)
        host.fail_next(404, {"error": "expired"})
        with pytest.raises(MediaFetchError, match="HTTP 404"):
            await media_bytes(Media("image/png", url=f"{host.url}/10.png"), client, 1000, policy=policy)
        assert await media_bytes(Media("image/png", url="data:image/png;base64,aGk="), client, 10) == b"hi"
        with pytest.raises(MediaFetchError):
            await media_bytes(Media("image/png"), client, 10)


async def test_progress_message_appears_and_is_deleted(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    async with chat_action(bot, chat, "upload_video", every=0.05), \
            ProgressMessage(bot, chat, lambda elapsed: f"working {elapsed}", delay=0.0, interval=0.05):
        await fake.wait_for(lambda: any(m.plain.startswith("working 0:0") for m in fake.messages(chat)))
        await fake.wait_for(lambda: (chat, "upload_video") in fake.actions)
    assert fake.messages(chat) == []
    assert any(m.deleted for m in fake.sent[chat])


async def test_first_message_waits_so_a_quick_answer_needs_no_edits(fake: FakeTelegram, bot: Bot, chat: int) -> None:
    clock = Clock()
    streamer = TextStreamer(bot, chat, interval=1.0, first_after=0.3, clock=clock)
    await streamer.update("Quick")
    clock.now = 0.2
    await streamer.update("Quick answer")
    assert fake.messages(chat) == []  # held back
    await streamer.finish("Quick answer.")
    [message] = fake.messages(chat)
    assert message.plain == "Quick answer." and message.edits == 0

    slow = TextStreamer(bot, chat + 1, interval=1.0, first_after=0.3, clock=clock)
    fake.remember_user(chat + 1, "Bo", "en", None, None)
    await slow.update("Slow")
    clock.now = 0.6
    await slow.update("Slow start")
    assert [m.plain for m in fake.messages(chat + 1)] == ["Slow start"]  # shown once the wait is over
