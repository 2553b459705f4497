"""Plain text chat end to end: streamed reply, history, charged once, a re-delivered update served once,
model markup escaped, the label chosen by inline button remembered. All on the shared bot."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Live
from tests.e2e.flows import chat_calls, eventually, settle
from tests.e2e.harness import FREE_CREDITS, PRIMARY_REPLY, SECONDARY_REPLY

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]


async def test_chat_reply_is_streamed_and_charged_once(live: Live) -> None:
    tg, db, user = live.tg, live.db, 2101
    assert {c["command"] for p in tg.commands for c in p["commands"]} >= {"start", "help", "image", "balance"}

    tg.push_message(user, "Hello bot")
    await tg.wait_for(lambda: PRIMARY_REPLY in tg.texts(user), timeout=20)
    replies = [m for m in tg.messages(user) if m.plain == PRIMARY_REPLY]
    assert len(replies) == 1
    assert replies[0].history[-1] == PRIMARY_REPLY  # edits, if any, end in the whole answer

    [call] = chat_calls(live.fakes.primary, "Hello bot")
    assert call.json["stream"] is True and call.json["stream_options"] == {"include_usage": True}

    await eventually(lambda: db.credits(user) == FREE_CREDITS - 1, what="one credit charged")
    [request] = await eventually(lambda: [r for r in db.requests(user) if r["status"] == "served"],
                                 what="the request row closed as served")
    assert request["provider"] == "primary" and request["credits_charged"] == 1
    assert request["credits_refunded"] == 0 and request["cost_micros"] > 0

    # the conversation is kept: the next call carries the first exchange
    tg.push_message(user, "And again")
    [second] = await tg.wait_for(lambda: chat_calls(live.fakes.primary, "And again"), timeout=20)
    contents = [m["content"] for m in second.json["messages"] if m["role"] in ("user", "assistant")]
    assert contents[-3:] == ["Hello bot", PRIMARY_REPLY, "And again"]
    await eventually(lambda: db.credits(user) == FREE_CREDITS - 2, what="second credit charged")


async def test_redelivered_update_is_served_and_charged_once(live: Live) -> None:
    tg, db, user = live.tg, live.db, 2102
    update_id = tg.push_message(user, "Only once please")
    await tg.wait_for(lambda: PRIMARY_REPLY in tg.texts(user), timeout=20)
    await eventually(lambda: db.credits(user) == FREE_CREDITS - 1, what="one credit charged")

    tg.redeliver(update_id)
    await tg.wait_for(lambda: tg.delivered[update_id] >= 2 and tg.pending_updates() == 0, timeout=20)
    await settle(tg)
    assert len(chat_calls(live.fakes.primary, "Only once please")) == 1
    assert [m.plain for m in tg.messages(user)].count(PRIMARY_REPLY) == 1
    assert db.credits(user) == FREE_CREDITS - 1
    assert len(db.requests(user)) == 1


async def test_model_markup_is_escaped_so_telegram_accepts_it(live: Live) -> None:
    tg, user = live.tg, 2103
    live.fakes.primary.reply_text = "Use `a < b && c` or **bold** and <script>alert(1)</script> & more"
    errors_before = len(tg.errors)
    tg.push_message(user, "Show me markup")
    shown = await tg.wait_for(lambda: [m for m in tg.messages(user) if "&& c" in m.plain and "more" in m.plain],
                              timeout=20)
    assert "a < b && c" in shown[-1].plain and "<script>alert(1)</script>" in shown[-1].plain
    assert {e["type"] for e in shown[-1].payload.get("entities", [])} >= {"code", "bold"}
    assert not [e for e in tg.errors[errors_before:] if "can't parse entities" in e[1]]  # never rejected


async def test_model_choice_by_inline_button_is_remembered(live: Live) -> None:
    tg, db, user = live.tg, live.db, 2104
    tg.push_message(user, "/model")
    [menu] = await tg.wait_for(lambda: [m for m in tg.messages(user) if m.reply_markup], timeout=20)
    buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    smart = next(b for b in buttons if "Smart chat" in b["text"])
    answers_before = len(tg.callback_answers)
    tg.push_callback(user, menu.message_id, smart["callback_data"])
    await tg.wait_for(lambda: len(tg.callback_answers) > answers_before, timeout=20)  # the button stops spinning

    tg.push_message(user, "Who answers now?")
    await tg.wait_for(lambda: SECONDARY_REPLY in tg.texts(user), timeout=20)
    assert chat_calls(live.fakes.primary, "Who answers now?") == []
    await eventually(lambda: db.credits(user) == FREE_CREDITS - 3, what="the chosen label's price charged")
