"""What users meet, through `dp.feed_update` with the fake Bot API and real providers over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.handlers.media import DOWNLOAD_LIMIT
from db.repo.users import grant_credits
from tests.bot.core_harness import FIRST_REPLY, SECOND_REPLY, CoreHarness, eventually
from tests.fakes.openai import PNG_1X1, openai_error

USER = 2002


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        yield harness


def chat_calls(fake: object) -> list:  # type: ignore[type-arg]
    return fake.calls_to("/chat/completions")  # type: ignore[attr-defined,no-any-return]


async def test_chat_is_streamed_history_kept_and_new_resets(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, stream_edit_interval=0) as h:  # an edit at every delta
        await chat_streamed_history_kept_and_new_resets(h)


async def chat_streamed_history_kept_and_new_resets(h: CoreHarness) -> None:
    h.first.reply_text = "Hello **there**, how can I help you today with your question?"
    await h.say(USER, "Hi bot")
    replies = [m for m in h.tg.messages(USER) if "how can I help" in m.plain]
    assert len(replies) == 1 and replies[0].plain == "Hello there, how can I help you today with your question?"
    # a private chat: it grew as a native draft, then was sent once, whole
    assert replies[0].edits == 0 and len(h.tg.drafts[USER]) >= 1
    assert replies[0].entities[0]["type"] == "bold"
    [served] = h.requests(USER)
    assert served["status"] == "served" and served["provider"] == "first" and served["credits_charged"] == 1
    assert h.credits(USER) == 9

    await h.say(USER, "And now?")
    messages = chat_calls(h.first)[1].json["messages"]
    assert [m["content"] for m in messages] == ["Hi bot", h.first.reply_text, "And now?"]

    await h.say(USER, "/new")
    assert "new conversation" in (h.tg.last_text(USER) or "")
    await h.say(USER, "Fresh start")
    assert [m["content"] for m in chat_calls(h.first)[2].json["messages"]] == ["Fresh start"]


async def test_out_of_credits_is_told_with_the_balance_and_nothing_called(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, free_credits=1) as h:
        await h.say(USER, "first")
        await h.say(USER, "second")
        assert len(chat_calls(h.first)) == 1
        last = h.tg.last_text(USER) or ""
        assert "Not enough credits" in last and "you have 0" in last
        served, refused = h.requests(USER)
        assert h.credits(USER) == 0 and served["status"] == "served"
        assert (refused["status"], refused["error_kind"], refused["credits_charged"]) == ("refused", "insufficient", 0)


async def test_a_redelivered_update_is_served_and_charged_once_even_after_a_restart(h: CoreHarness) -> None:
    update_id = await h.say(USER, "only once")
    await h.feed(update_id)  # in-memory dedup
    await h.boot()  # a restart forgets it: the unique update id in the database still holds
    await h.feed(update_id)
    assert len(chat_calls(h.first)) == 1
    assert [m.plain for m in h.tg.messages(USER)].count(FIRST_REPLY) == 1
    [request] = h.requests(USER)
    assert h.credits(USER) == 9 and request["status"] == "served"


async def test_a_second_request_while_one_runs_is_told_to_wait_and_not_charged(h: CoreHarness) -> None:
    h.first.latency_s = 1.0
    first = h.say_later(USER, "slow question")
    await eventually(lambda: chat_calls(h.first))
    await h.say(USER, "impatient")
    assert "still running" in (h.tg.last_text(USER) or "")
    await first
    assert len(chat_calls(h.first)) == 1
    served, busy = h.requests(USER)
    assert h.credits(USER) == 9 and served["status"] == "served"
    assert (busy["status"], busy["error_kind"], busy["credits_charged"]) == ("refused", "busy", 0)


async def test_cancel_stops_the_running_request_and_refunds_it(h: CoreHarness) -> None:
    h.first.hang = True
    running = h.say_later(USER, "never answered")
    await eventually(lambda: chat_calls(h.first))
    assert h.credits(USER) == 9
    await h.say(USER, "/cancel")
    await asyncio.wait_for(running, 5)
    assert "Cancelled" in (h.tg.last_text(USER) or "")
    [request] = h.requests(USER)
    assert request["status"] == "canceled" and request["credits_refunded"] == 1
    assert h.credits(USER) == 10
    await h.say(USER, "/cancel")
    assert "Nothing is running" in (h.tg.last_text(USER) or "")


async def test_requests_beyond_parallel_requests_wait_their_turn_and_can_be_cancelled_before_it(
        tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, parallel_requests=1) as h:
        h.first.hang = True
        first = h.say_later(USER, "holds the only turn")
        await eventually(lambda: chat_calls(h.first))
        second = h.say_later(USER + 1, "waits for a turn")
        await asyncio.sleep(0.2)
        assert len(chat_calls(h.first)) == 1 and h.requests(USER + 1) == []  # not reserved, not charged
        await h.say(USER + 1, "/cancel")
        assert "before it started" in (h.tg.last_text(USER + 1) or "")
        await h.say(USER, "/cancel")  # frees the turn: the cancelled one must not start
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert h.requests(USER + 1) == [] and h.credits(USER + 1) == 10
        assert len(chat_calls(h.first)) == 1


async def test_cancel_of_a_video_job_refunds_and_cancels_it_at_the_provider(h: CoreHarness) -> None:
    await h.say(USER, "/start")  # the user exists with 10 credits; video costs 20: grant some
    assert h.app is not None
    async with h.app.sessions() as session, session.begin():
        await grant_credits(session, USER, 20, reason="grant")
    running = h.say_later(USER, "/video a cat surfing")
    await eventually(lambda: h.rows("SELECT 1 FROM requests WHERE provider_job_id IS NOT NULL"))
    await h.say(USER, "/cancel")
    await asyncio.wait_for(running, 5)
    [request] = h.requests(USER)
    assert request["status"] == "canceled" and h.credits(USER) == 30
    assert h.replicate.calls_to("/cancel")


async def test_model_keyboard_and_callback_remember_the_choice(h: CoreHarness) -> None:
    await h.say(USER, "/model")
    [menu] = [m for m in h.tg.messages(USER) if m.reply_markup]
    buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    texts = [b["text"] for b in buttons]
    assert any(t.startswith("✅") and "Fast chat" in t and "1 credit" in t for t in texts)
    assert any("Smart chat" in t and "3 credits" in t for t in texts)
    assert any("Video" in t and "20 credits" in t for t in texts)
    smart = next(b for b in buttons if "Smart chat" in b["text"])
    update_id = h.tg.push_callback(USER, menu.message_id, smart["callback_data"])
    await h.feed(update_id)
    assert h.tg.callback_answers and "Smart chat" in str(h.tg.callback_answers[-1])
    marks = [b["text"] for row in h.tg.messages(USER)[0].reply_markup["inline_keyboard"]  # type: ignore[index]
             for b in row if b["text"].startswith("✅")]
    assert any("Smart chat" in m for m in marks) and not any("Fast chat" in m for m in marks)

    await h.say(USER, "who answers?")
    assert SECOND_REPLY in h.tg.texts(USER) and chat_calls(h.first) == []
    assert h.credits(USER) == 7


async def test_image_is_delivered_as_a_photo(h: CoreHarness) -> None:
    await h.say(USER, "/image a red square")
    [photo] = h.tg.media(USER, "photo")
    assert photo.file is not None and photo.file.data == PNG_1X1
    assert photo.plain == "a red square"
    assert h.first.calls_to("/images/generations")[0].json["prompt"] == "a red square"
    assert h.credits(USER) == 5


async def test_refused_as_unsafe_gets_its_own_message_and_a_refund(h: CoreHarness) -> None:
    h.first.fail_next(400, openai_error("Your request was rejected by the safety system.",
                                        "image_generation_user_error", "content_policy_violation"))
    await h.say(USER, "/image something bad")
    assert "refused this request as unsafe" in (h.tg.last_text(USER) or "")
    assert h.tg.media(USER) == []
    [request] = h.requests(USER)
    assert request["status"] == "failed" and request["error_kind"] == "content_policy"
    assert h.credits(USER) == 10


async def test_all_busy_says_when_to_try_again_and_refunds(h: CoreHarness) -> None:
    limited = openai_error("Rate limit reached. Please try again in 2m.", "requests", "rate_limit_exceeded")
    h.first.fail_next(429, limited, headers={"retry-after": "110"})
    h.second.fail_next(429, limited, headers={"retry-after": "170"})
    await h.say(USER, "anyone?")
    last = h.tg.last_text(USER) or ""
    assert "busy" in last and "try again in 2 minutes" in last
    assert h.credits(USER) == 10
    assert [r["status"] for r in h.requests(USER)] == ["failed"]
    attempts = h.rows("SELECT provider, kind FROM attempts ORDER BY position")
    assert [(a["provider"], a["kind"]) for a in attempts] == [("first", "rate_limited"), ("second", "rate_limited")]


async def test_empty_or_too_long_input_is_answered_without_a_charge(tmp_path: Path) -> None:
    async with CoreHarness.start(tmp_path, max_prompt_chars=50) as h:
        await h.say(USER, "/image")
        assert "Describe the picture" in (h.tg.last_text(USER) or "")
        await h.say(USER, "x" * 51)
        assert "too long: 51 characters" in (h.tg.last_text(USER) or "")
        await h.say(USER, "/tts   ")
        assert "Write the text" in (h.tg.last_text(USER) or "")
        assert h.requests(USER) == [] and h.credits(USER) == 10
        assert chat_calls(h.first) == []


async def test_start_balance_and_russian(h: CoreHarness) -> None:
    await h.say(USER, "/start", first_name="<Ann & Co>")
    welcome = h.tg.last_text(USER) or ""
    assert "<Ann & Co>" in welcome and "Fast chat" in welcome and "10" in welcome
    await h.say(USER, "hello")
    await h.say(USER, "/balance")
    balance = h.tg.last_text(USER) or ""
    assert "9 credits left" in balance and "Today: 1 requests, 1 credits spent" in balance
    await h.say(3003, "/help", language_code="ru")
    assert "Что я умею" in (h.tg.last_text(3003) or "")


async def test_a_stream_that_breaks_off_keeps_the_text_shown_and_its_charge(h: CoreHarness) -> None:
    h.first.stream_error_after = 2
    await h.say(USER, "tell me a story")
    texts = h.tg.texts(USER)
    assert "Hello from" in texts and "cut off" in texts[-1]
    assert chat_calls(h.second) == []  # no fallback once text was shown
    [request] = h.requests(USER)
    # part of the answer was delivered, so the charge stands, and the user is told so
    assert request["status"] == "failed" and request["credits_refunded"] == 0 and h.credits(USER) == 9
    assert "stay charged" in texts[-1] and request["delivered_at"] is not None


async def test_an_unexpected_failure_is_a_short_message_with_a_reference_and_a_refund(h: CoreHarness) -> None:
    h.tg.fail_next(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"},
                   path_contains="sendPhoto")
    await h.say(USER, "/image a blue circle")
    [request] = h.requests(USER)
    last = h.tg.last_text(USER) or ""
    assert f"ref. {request['id']}" in last and "refunded" in last and "Traceback" not in last
    assert request["status"] == "failed" and request["error_kind"] == "telegram"
    assert h.credits(USER) == 10


async def test_tts_is_sent_as_a_voice_message(h: CoreHarness) -> None:
    await h.say(USER, "/tts Good morning")
    [voice] = h.tg.media(USER, "voice")
    assert voice.file is not None and voice.file.data == h.first.speech_bytes
    assert h.credits(USER) == 8


async def test_edit_needs_a_photo_and_a_known_operation(h: CoreHarness) -> None:
    await h.say(USER, "/edit upscale")
    assert "Send a photo" in (h.tg.last_text(USER) or "")
    await h.say(USER, "/edit make it sharper")  # an instruction: it needs a photo too
    assert "Send a photo" in (h.tg.last_text(USER) or "")
    update_id = h.tg.push_photo(USER, PNG_1X1, caption="/edit inpaint")
    await h.feed(update_id)
    assert "needs a description" in (h.tg.last_text(USER) or "")
    assert h.requests(USER) == []


async def test_edit_sends_the_users_photo_and_delivers_the_result(h: CoreHarness) -> None:
    update_id = h.tg.push_photo(USER, PNG_1X1, caption="/edit inpaint a red hat")
    await h.feed(update_id)
    [call] = h.first.calls_to("/images/edits")
    assert call.form["image"] == PNG_1X1 and call.form["prompt"] == "a red hat"
    assert len(h.tg.media(USER, "photo")) == 1
    assert h.credits(USER) == 7


async def test_a_busy_users_edit_is_told_to_wait_without_downloading_the_photo(h: CoreHarness) -> None:
    h.first.latency_s = 1.0
    first = h.say_later(USER, "slow question")
    await eventually(lambda: chat_calls(h.first))
    await h.feed(h.tg.push_photo(USER, PNG_1X1, caption="/edit upscale"))
    assert "still running" in (h.tg.last_text(USER) or "")
    assert h.tg.downloads == [] and h.tg.calls_of("getFile") == []
    await first
    assert h.first.calls_to("/images/edits") == []
    assert [r["status"] for r in h.requests(USER)] == ["served", "refused"]


async def test_a_photo_without_file_size_past_the_cap_is_refused(h: CoreHarness) -> None:
    too_big = PNG_1X1 + bytes(DOWNLOAD_LIMIT)  # Telegram says nothing of its size: the download is counted
    await h.feed(h.tg.push_photo(USER, too_big, caption="/edit upscale", with_size=False))
    assert "too large" in (h.tg.last_text(USER) or "")
    assert h.first.calls_to("/images/edits") == [] and h.requests(USER) == [] and h.credits(USER) == 10


async def test_a_photo_without_file_size_under_the_cap_is_edited(h: CoreHarness) -> None:
    await h.feed(h.tg.push_photo(USER, PNG_1X1, caption="/edit inpaint a red hat", with_size=False))
    [call] = h.first.calls_to("/images/edits")
    assert call.form["image"] == PNG_1X1 and len(h.tg.downloads) == 1


async def test_language_can_be_switched(h: CoreHarness) -> None:
    await h.say(USER, "/language")
    [menu] = [m for m in h.tg.messages(USER) if m.reply_markup]
    ru = next(b for row in menu.reply_markup["inline_keyboard"] for b in row  # type: ignore[index]
              if "Русский" in b["text"])
    await h.feed(h.tg.push_callback(USER, menu.message_id, ru["callback_data"]))
    assert "по-русски" in (h.tg.last_text(USER) or "")
    await h.say(USER, "/cancel")  # Telegram still says "en": the user's choice wins
    assert h.tg.last_text(USER) == "Сейчас ничего не выполняется."


async def test_a_chat_interrupted_by_a_shutdown_is_refunded_and_the_user_told(h: CoreHarness) -> None:
    h.first.hang = True
    running = h.say_later(USER, "long thought")
    await eventually(lambda: chat_calls(h.first))
    assert h.app is not None
    await h.app.on_shutdown()
    await asyncio.wait_for(running, 5)
    assert "restarting" in (h.tg.last_text(USER) or "")
    [request] = h.requests(USER)
    assert request["status"] == "failed" and request["error_kind"] == "interrupted"
    assert h.credits(USER) == 10
