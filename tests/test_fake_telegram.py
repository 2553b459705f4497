"""The fake Bot API behaves like the real one, as seen by a real aiogram Bot through its own session."""

from __future__ import annotations

import asyncio
import html
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    LabeledPrice,
    TransactionPartnerUser,
)
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_state import ApiError, parse_html, utf16_len

CHAT = 4242


def png(width: int = 3, height: int = 2) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server  # type: ignore[misc]


def make_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.url), timeout=5)
    return Bot(token or fake.token, session=session)


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(fake)
    yield bot
    await bot.session.close()


async def test_get_me_is_the_bot(bot: Bot, fake: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.id == int(fake.token.split(":")[0]) and me.username == "fake_ai_bot"


async def test_wrong_token_is_unauthorized(fake: FakeTelegram) -> None:
    other = make_bot(fake, "999:wrong")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await other.get_me()
    finally:
        await other.session.close()


async def test_send_message_returns_a_real_message(bot: Bot, fake: FakeTelegram) -> None:
    first = await bot.send_message(CHAT, "hello")
    second = await bot.send_message(CHAT, "<b>bold</b> &amp; <i>it</i>", parse_mode="HTML")
    assert second.message_id == first.message_id + 1
    assert first.chat.id == CHAT and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.is_bot
    assert second.text == "bold & it"
    assert [(e.type, e.offset, e.length) for e in second.entities or []] == [("bold", 0, 4), ("italic", 7, 2)]
    assert fake.texts(CHAT) == ["hello", "bold & it"]
    assert fake.messages(CHAT)[1].text == "<b>bold</b> &amp; <i>it</i>"


@pytest.mark.parametrize(("text", "error"), [
    ("<b>open", "Can't find end tag corresponding to start tag \"b\""),
    ("<div>x</div>", "Unsupported start tag \"div\" at byte offset 0"),
    ("1 < 2", "Unsupported start tag \"\" at byte offset 2"),
    ("<b><i>x</b></i>", "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""),
    ("x</b>", "Unexpected end tag at byte offset 1"),
    ("fish & chips", "Unsupported HTML entity at byte offset 5"),
    ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler"'),
])
async def test_bad_html_cannot_be_parsed(bot: Bot, fake: FakeTelegram, text: str, error: str) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as info:
        await bot.send_message(CHAT, text, parse_mode="HTML")
    assert error in info.value.message
    assert fake.messages(CHAT) == []
    assert fake.errors == [("sendMessage", info.value.message)]


async def test_every_allowed_tag_parses(bot: Bot) -> None:
    text = ('<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>'
            '<del>d</del><span class="tg-spoiler">p</span><tg-spoiler>t</tg-spoiler><a href="https://x.org">a</a>'
            '<code>c</code><pre><code class="language-python">x = 1</code></pre><blockquote>q</blockquote>'
            '<blockquote expandable>w</blockquote><tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>')
    message = await bot.send_message(CHAT, text, parse_mode="HTML")
    kinds = {e.type for e in message.entities or []}
    assert kinds >= {"bold", "italic", "underline", "strikethrough", "spoiler", "text_link", "code", "pre",
                     "blockquote", "expandable_blockquote", "custom_emoji"}
    pre = next(e for e in message.entities or [] if e.type == "pre")
    assert pre.language == "python"


async def test_length_limits_count_utf16_after_parsing(bot: Bot) -> None:
    await bot.send_message(CHAT, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")  # tags do not count
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "a" * 4097)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "😀" * 2049)  # 4098 UTF-16 code units
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(CHAT, BufferedInputFile(png(), "p.png"), caption="c" * 1025)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(CHAT, "  ")


async def test_edit_history_not_modified_and_not_found(bot: Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "Thinking…")
    edited = await bot.edit_message_text("Hello", chat_id=CHAT, message_id=message.message_id)
    assert not isinstance(edited, bool) and edited.text == "Hello" and edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Hello", chat_id=CHAT, message_id=message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    await bot.edit_message_text("Hello, world", chat_id=CHAT, message_id=message.message_id)
    assert fake.messages(CHAT)[0].history == ["Thinking…", "Hello", "Hello, world"]
    assert fake.last_text(CHAT) == "Hello, world"
    assert await bot.delete_message(CHAT, message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("again", chat_id=CHAT, message_id=message.message_id)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(CHAT, message.message_id)


async def test_rate_limit_raises_retry_after_then_recovers(bot: Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "a")
    fake.rate_limit("editMessageText", times=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter) as info:
            await bot.edit_message_text("b", chat_id=CHAT, message_id=message.message_id)
        assert info.value.retry_after == 3 and "Too Many Requests: retry after 3" in info.value.message
    await bot.edit_message_text("b", chat_id=CHAT, message_id=message.message_id)
    assert fake.last_text(CHAT) == "b"


async def test_blocked_user_is_forbidden(bot: Bot, fake: FakeTelegram) -> None:
    fake.block(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")


async def test_photo_upload_is_stored_and_downloadable(bot: Bot, fake: FakeTelegram) -> None:
    data = png(7, 5)
    message = await bot.send_photo(CHAT, BufferedInputFile(data, "out.png"), caption="<i>cat</i>",
                                   parse_mode="HTML")
    assert message.photo and (message.photo[-1].width, message.photo[-1].height) == (7, 5)
    assert message.caption == "cat"
    [sent] = fake.media(CHAT, "photo")
    assert sent.file is not None and sent.file.data == data and sent.file.filename == "out.png"
    downloaded = await bot.download(message.photo[-1].file_id)
    assert downloaded is not None and downloaded.read() == data
    again = await bot.send_photo(CHAT, message.photo[-1].file_id)  # re-send by file id
    assert again.photo and again.photo[-1].file_id == message.photo[-1].file_id


async def test_photo_must_be_an_image(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(CHAT, BufferedInputFile(b"not an image", "x.png"))
    with pytest.raises(TelegramBadRequest, match="failed to get HTTP URL content"):
        await bot.send_photo(CHAT, "http://127.0.0.1:9/p.png")
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(CHAT, "no-such-file-id")


async def test_video_voice_audio_document(bot: Bot, fake: FakeTelegram) -> None:
    video = await bot.send_video(CHAT, BufferedInputFile(b"\x00\x00\x00 ftypmp4", "v.mp4"), duration=4)
    voice = await bot.send_voice(CHAT, BufferedInputFile(b"OggS voice", "v.ogg"))
    audio = await bot.send_audio(CHAT, BufferedInputFile(b"ID3 mp3", "speech.mp3"), title="Speech")
    doc = await bot.send_document(CHAT, BufferedInputFile(b"a,b\n1,2\n", "export.csv"), caption="log")
    assert video.video and video.video.duration == 4 and video.video.mime_type == "video/mp4"
    assert voice.voice and voice.voice.mime_type == "audio/ogg"
    assert audio.audio and audio.audio.title == "Speech" and audio.audio.file_name == "speech.mp3"
    assert doc.document and doc.document.file_name == "export.csv" and doc.caption == "log"
    assert [m.media_kind for m in fake.media(CHAT)] == ["video", "voice", "audio", "document"]
    assert fake.media(CHAT, "document")[0].file.data == b"a,b\n1,2\n"  # type: ignore[union-attr]


async def test_media_group(bot: Bot, fake: FakeTelegram) -> None:
    album: list[Any] = [InputMediaPhoto(media=BufferedInputFile(png(), f"{i}.png"), caption=f"n{i}")
                        for i in range(3)]
    messages = await bot.send_media_group(CHAT, album)
    assert len(messages) == 3 and len({m.media_group_id for m in messages}) == 1
    assert [m.plain for m in fake.media(CHAT, "photo")] == ["n0", "n1", "n2"]


async def test_get_updates_offset_limit_and_long_poll(bot: Bot, fake: FakeTelegram) -> None:
    ids = [fake.push_message(CHAT, f"m{i}") for i in range(3)]
    assert [u.update_id for u in await bot.get_updates()] == ids
    assert [u.update_id for u in await bot.get_updates(offset=ids[1], limit=1)] == [ids[1]]
    assert [u.update_id for u in await bot.get_updates()] == ids[1:]  # ids[0] was confirmed
    assert await bot.get_updates(offset=ids[2] + 1, timeout=0) == []
    poll = asyncio.create_task(bot.get_updates(offset=ids[2] + 1, timeout=5))
    await fake.wait_for(lambda: fake.polls >= 5, timeout=2)
    new_id = fake.push_message(CHAT, "late", first_name="Ann", username="ann")
    [update] = await poll
    assert update.update_id == new_id and update.message is not None
    assert update.message.text == "late" and update.message.from_user.username == "ann"  # type: ignore[union-attr]


async def test_commands_carry_entities_and_redelivery(bot: Bot, fake: FakeTelegram) -> None:
    update_id = fake.push_message(CHAT, "/image a cat")
    [update] = await bot.get_updates()
    assert update.message and update.message.entities
    assert (update.message.entities[0].type, update.message.entities[0].length) == ("bot_command", 6)
    assert await bot.get_updates(offset=update_id + 1) == []
    fake.redeliver(update_id)
    [again] = await bot.get_updates(offset=update_id + 1)
    assert again.update_id == update_id and again.message and again.message.text == "/image a cat"
    assert fake.delivered[update_id] == 2


async def test_allowed_updates_filter_and_drop_pending(bot: Bot, fake: FakeTelegram) -> None:
    message = await bot.send_message(CHAT, "pick", reply_markup=InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a")]]))
    fake.push_message(CHAT, "text")
    fake.push_callback(CHAT, message.message_id, "a")
    [update] = await bot.get_updates(allowed_updates=["callback_query"])
    assert update.callback_query and update.callback_query.data == "a"
    assert update.callback_query.message and update.callback_query.message.message_id == message.message_id
    assert await bot.answer_callback_query(update.callback_query.id, text="ok")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(update.callback_query.id)
    fake.push_message(CHAT, "dropped")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(allowed_updates=[]) == []


async def test_second_long_poll_terminates_the_first(bot: Bot, fake: FakeTelegram) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await fake.wait_polling(1, timeout=2)
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    assert await second == []


async def test_user_photo_can_be_downloaded(bot: Bot, fake: FakeTelegram) -> None:
    data = png(4, 4)
    fake.push_photo(CHAT, data, caption="/edit remove background")
    [update] = await bot.get_updates()
    assert update.message and update.message.photo and update.message.caption == "/edit remove background"
    file = await bot.get_file(update.message.photo[-1].file_id)
    assert file.file_path and file.file_size == len(data)
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None and downloaded.read() == data


async def test_commands_menu_and_chat_actions(bot: Bot, fake: FakeTelegram) -> None:
    await bot.set_my_commands([BotCommand(command="image", description="Draw a picture")])
    assert [c.command for c in await bot.get_my_commands()] == ["image"]
    assert fake.commands[-1]["commands"] == [{"command": "image", "description": "Draw a picture"}]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad-Name", description="x")])
    assert await bot.send_chat_action(CHAT, "upload_photo")
    assert fake.actions == [(CHAT, "upload_photo")]


async def test_star_transactions_list_charges_and_refunds_oldest_first_in_pages(bot: Bot, fake: FakeTelegram) -> None:
    fake.remember_user(CHAT, "Payer", "en", None, None)
    await bot.send_invoice(CHAT, title="100 credits", description="d", payload="p1", currency="XTR",
                           prices=[LabeledPrice(label="100", amount=50)])
    invoice = fake.stars.invoices[-1]
    charges = [fake.stars.charge_unseen(CHAT, invoice) for _ in range(3)]
    fake.stars.refund_unseen(charges[0].charge_id)
    assert fake.pending_updates() == 0  # nothing of it reached the bot
    listed = (await bot.get_star_transactions()).transactions
    assert [t.id for t in listed] == [c.charge_id for c in charges] + [charges[0].charge_id]
    first, refund = listed[0], listed[-1]
    assert first.amount == 50 and first.receiver is None
    assert isinstance(first.source, TransactionPartnerUser)
    assert (first.source.user.id, first.source.invoice_payload, first.source.transaction_type) == \
        (CHAT, "p1", "invoice_payment")
    assert refund.source is None and isinstance(refund.receiver, TransactionPartnerUser)
    assert refund.receiver.user.id == CHAT
    page = (await bot.get_star_transactions(offset=1, limit=2)).transactions
    assert [t.id for t in page] == [charges[1].charge_id, charges[2].charge_id]
    assert (await bot.get_star_transactions(offset=4)).transactions == []
    with pytest.raises(TelegramBadRequest):
        await bot.get_star_transactions(limit=101)


async def test_wait_for_times_out_with_a_summary(fake: FakeTelegram) -> None:
    with pytest.raises(TimeoutError, match="nothing"):
        await fake.wait_for(lambda: fake.last_text(CHAT), timeout=0.05)


@given(st.text(max_size=200))
def test_escaped_text_always_parses_to_itself(text: str) -> None:
    assert parse_html(html.escape(text, quote=False)) == (text, [])


@given(st.text(max_size=50), st.text(min_size=1, max_size=50))
def test_entity_offsets_are_utf16(before: str, bold: str) -> None:
    plain, entities = parse_html(html.escape(before) + "<b>" + html.escape(bold) + "</b>")
    assert plain == before + bold
    assert entities == [{"type": "bold", "offset": utf16_len(before), "length": utf16_len(bold)}]


@given(st.text(alphabet="<>&/abi ", max_size=30))
def test_parser_never_crashes(text: str) -> None:
    try:
        parse_html(text)
    except ApiError as exc:
        assert exc.code == 400 and exc.description.startswith("Bad Request: can't parse entities: ")
