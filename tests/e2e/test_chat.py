"""Plain text chat end to end: streamed reply, history, charged once, a re-delivered update served once."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Database, StartBot
from tests.e2e.flows import eventually, settle
from tests.e2e.harness import FREE_CREDITS, PRIMARY_REPLY, SECONDARY_REPLY, Fakes

pytestmark = pytest.mark.e2e
USER = 2002


async def test_chat_reply_is_streamed_and_charged_once(fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg = fakes.telegram
    await start_bot()
    assert {c["command"] for p in tg.commands for c in p["commands"]} >= {"start", "help", "image", "balance"}

    tg.push_message(USER, "Hello bot")
    await tg.wait_for(lambda: PRIMARY_REPLY in tg.texts(USER), timeout=20)
    replies = [m for m in tg.messages(USER) if m.plain == PRIMARY_REPLY]
    assert len(replies) == 1
    assert replies[0].history[-1] == PRIMARY_REPLY  # edits, if any, end in the whole answer

    [call] = fakes.primary.calls_to("/chat/completions")
    assert call.json["stream"] is True and call.json["stream_options"] == {"include_usage": True}
    assert call.json["messages"][-1] == {"role": "user", "content": "Hello bot"}

    await eventually(lambda: db.credits(USER) == FREE_CREDITS - 1, what="one credit charged")
    [request] = await eventually(lambda: [r for r in db.requests(USER) if r["status"] == "served"],
                                 what="the request row closed as served")
    assert request["provider"] == "primary" and request["credits_charged"] == 1
    assert request["credits_refunded"] == 0 and request["cost_micros"] > 0

    # the conversation is kept: the next call carries the first exchange
    tg.push_message(USER, "And again")
    await tg.wait_for(lambda: len(fakes.primary.calls_to("/chat/completions")) == 2, timeout=20)
    messages = fakes.primary.calls_to("/chat/completions")[1].json["messages"]
    contents = [m["content"] for m in messages if m["role"] in ("user", "assistant")]
    assert contents[-3:] == ["Hello bot", PRIMARY_REPLY, "And again"]
    await eventually(lambda: db.credits(USER) == FREE_CREDITS - 2, what="second credit charged")


async def test_redelivered_update_is_served_and_charged_once(fakes: Fakes, start_bot: StartBot,
                                                             db: Database) -> None:
    tg = fakes.telegram
    await start_bot()
    update_id = tg.push_message(USER, "Only once please")
    await tg.wait_for(lambda: PRIMARY_REPLY in tg.texts(USER), timeout=20)
    await eventually(lambda: db.credits(USER) == FREE_CREDITS - 1, what="one credit charged")

    tg.redeliver(update_id)
    await tg.wait_for(lambda: tg.delivered[update_id] >= 2 and tg.pending_updates() == 0, timeout=20)
    await settle(tg)
    assert len(fakes.primary.calls_to("/chat/completions")) == 1
    assert [m.plain for m in tg.messages(USER)].count(PRIMARY_REPLY) == 1
    assert db.credits(USER) == FREE_CREDITS - 1
    assert len(db.requests(USER)) == 1


async def test_model_markup_is_escaped_so_telegram_accepts_it(fakes: Fakes, start_bot: StartBot) -> None:
    tg = fakes.telegram
    fakes.primary.reply_text = "Use `a < b && c` or **bold** and <script>alert(1)</script> & more"
    await start_bot()
    tg.push_message(USER, "Show me markup")
    shown = await tg.wait_for(lambda: [m for m in tg.messages(USER) if "&& c" in m.plain and "more" in m.plain],
                              timeout=20)
    assert "a < b && c" in shown[-1].plain and "<script>alert(1)</script>" in shown[-1].plain
    assert {e["type"] for e in shown[-1].payload.get("entities", [])} >= {"code", "bold"}
    assert not [e for e in tg.errors if "can't parse entities" in e[1]]  # never rejected, not even once


async def test_model_choice_by_inline_button_is_remembered(fakes: Fakes, start_bot: StartBot,
                                                           db: Database) -> None:
    tg = fakes.telegram
    await start_bot()
    tg.push_message(USER, "/model")
    [menu] = await tg.wait_for(lambda: [m for m in tg.messages(USER) if m.reply_markup], timeout=20)
    buttons = [b for row in menu.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
    smart = next(b for b in buttons if "Smart chat" in b["text"])
    tg.push_callback(USER, menu.message_id, smart["callback_data"])
    await tg.wait_for(lambda: tg.callback_answers, timeout=20)  # the button stops spinning

    tg.push_message(USER, "Who answers now?")
    await tg.wait_for(lambda: SECONDARY_REPLY in tg.texts(USER), timeout=20)
    assert fakes.primary.calls_to("/chat/completions") == []
    await eventually(lambda: db.credits(USER) == FREE_CREDITS - 3, what="the chosen label's price charged")
