"""Group chats: the bot answers a mention, a reply to it, or a command for it; everything else said in the
group costs nothing (no reply, no user row, no request row). The sender pays; the conversation is the
group's (each forum topic its own), so members build on each other's turns. Fed through the real
dispatcher (CoreHarness), with the fake Bot API as Telegram. Admin commands in a group: test_admin_refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bot.core_harness import FIRST_REPLY, CoreHarness
from tests.fakes.base import Call

GROUP = -100600
ALICE, BOB, CAROL = 3001, 3002, 3003
BOT = "@fake_ai_bot"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        yield harness


def _user_turns(call: Call) -> list[str]:
    return [m["content"] for m in call.json["messages"] if m["role"] in ("user", "assistant")]


async def _say(h: CoreHarness, user: int, text: str, **kw: int) -> int:
    update_id = h.tg.push_group_text(GROUP, user, text, first_name=f"User{user}", **kw)
    await h.feed(update_id)
    return update_id


async def test_a_mention_is_answered_in_the_group_and_the_sender_pays(h: CoreHarness) -> None:
    await _say(h, ALICE, f"{BOT} what is two and two?")
    [answer] = h.tg.messages(GROUP)
    assert answer.plain == FIRST_REPLY
    assert answer.payload["reply_to_message"]["from"]["id"] == ALICE
    [call] = h.first.calls_to("/chat/completions")
    assert _user_turns(call)[-1] == "User3001: what is two and two?"  # the bot's name taken out, signed
    [request] = h.requests(ALICE)
    assert (request["chat_id"], request["status"], request["credits_charged"]) == (GROUP, "served", 1)
    assert h.credits(ALICE) == h.settings.free_credits - 1
    assert h.tg.drafts[GROUP] == []  # drafts are for private chats; a group reply is edited in place


async def test_a_reply_to_the_bot_is_answered_with_the_groups_conversation(h: CoreHarness) -> None:
    await _say(h, ALICE, f"Hey {BOT}, remember the number 7")
    [answer] = h.tg.messages(GROUP)
    await _say(h, BOB, "and what number was it?", reply_to=answer.message_id)
    assert [m.plain for m in h.tg.messages(GROUP)] == [FIRST_REPLY, FIRST_REPLY]
    second = h.first.calls_to("/chat/completions")[-1]
    assert _user_turns(second) == ["User3001: Hey, remember the number 7", FIRST_REPLY,
                                   "User3002: and what number was it?"]
    assert h.credits(BOB) == h.settings.free_credits - 1 and len(h.requests(BOB)) == 1


async def test_everything_else_said_in_the_group_costs_nothing(h: CoreHarness) -> None:
    await _say(h, ALICE, f"{BOT} hello")
    [answer] = h.tg.messages(GROUP)
    for text in ["just chatting with friends", "@someone_else look at this", "/start@other_bot",
                 "/image@other_bot a cat", "mail me at bob@example.com"]:
        await _say(h, CAROL, text)
    await _say(h, CAROL, "a reply to Alice, not to the bot", reply_to=answer.message_id - 1)
    await _say(h, CAROL, "/unknown")  # a bare command not ours may be any bot's: no "unknown command" hint
    await _say(h, CAROL, "/Start")  # nor is one written in another case, which no handler of ours matches
    assert len(h.tg.messages(GROUP)) == 1
    assert h.rows("SELECT id FROM users WHERE id = ?", CAROL) == []  # not even a user row
    assert h.requests(CAROL) == [] and len(h.first.calls_to("/chat/completions")) == 1


async def test_a_mention_in_reply_to_a_member_quotes_that_members_message(h: CoreHarness) -> None:
    bonjour = await _say(h, BOB, "Bonjour tout le monde")  # not for the bot: ignored, but Alice answers it
    bonjour_id = h.tg._update_log[bonjour]["message"]["message_id"]
    await _say(h, ALICE, f"{BOT} translate this", reply_to=bonjour_id)
    await _say(h, CAROL, BOT, reply_to=bonjour_id)  # the mention alone: the quoted message is the question
    first, second = h.first.calls_to("/chat/completions")
    assert _user_turns(first)[-1] == "User3001: translate this\n[in reply to User3002: Bonjour tout le monde]"
    assert _user_turns(second)[-1] == "User3003:\n[in reply to User3002: Bonjour tout le monde]"


async def test_commands_for_the_bot_are_answered(h: CoreHarness) -> None:
    await _say(h, ALICE, f"/start{BOT}")
    await _say(h, ALICE, "/balance")  # a bare command: Telegram gives a bot those too
    await _say(h, ALICE, f"/nonsense{BOT}")
    texts = [m.plain for m in h.tg.messages(GROUP)]
    assert len(texts) == 3 and "/help" in texts[2]  # the unknown command hint, for a command named for us


async def test_each_forum_topic_is_a_conversation_of_its_own_answered_in_its_topic(h: CoreHarness) -> None:
    await _say(h, ALICE, f"{BOT} topic seven here", thread_id=7)
    await _say(h, ALICE, f"{BOT} in the general chat")
    await _say(h, BOB, f"{BOT} topic seven again", thread_id=7)
    answers = h.tg.messages(GROUP)
    assert [m.payload.get("message_thread_id") for m in answers] == [7, None, 7]
    calls = h.first.calls_to("/chat/completions")
    assert _user_turns(calls[1]) == ["User3001: in the general chat"]
    assert _user_turns(calls[2]) == ["User3001: topic seven here", FIRST_REPLY, "User3002: topic seven again"]
    await _say(h, BOB, f"/new{BOT}", thread_id=7)  # starts the topic over, for everyone in it
    await _say(h, ALICE, f"{BOT} fresh start", thread_id=7)
    assert _user_turns(h.first.calls_to("/chat/completions")[-1]) == ["User3001: fresh start"]


def test_every_command_a_router_handles_is_one_of_the_bots_commands() -> None:
    """A bare command in a group is the bot's only when bot.commands lists it: a router's command missing
    there would be dropped in groups before its handler saw it."""
    from aiogram import Router
    from aiogram.filters import Command

    from bot.commands import BOT_COMMANDS
    from bot.handlers import routers

    def handled(router: Router) -> set[str]:
        found = {str(c) for h in router.message.handlers for f in h.filters if isinstance(f.callback, Command)
                 for c in f.callback.commands}
        return found.union(*(handled(sub) for sub in router.sub_routers))

    assert set().union(*(handled(r) for r in routers())) == BOT_COMMANDS


@pytest.mark.parametrize(("text", "question"), [
    (f"{BOT} what now?", "what now?"), (f"Hey {BOT}, look", "Hey, look"),
    (f"{BOT.upper()} shout", "shout"), (f"ask {BOT} and @other_bot", "ask and @other_bot"),
    (f"😀 {BOT} emoji first", "😀 emoji first"),  # offsets count UTF-16 units: the emoji is two
])
def test_the_question_is_the_text_without_the_bots_name(text: str, question: str) -> None:
    from aiogram.types import Chat, Message, MessageEntity, User

    from bot.addressing import addressed_to, without_mentions
    from tests.fakes.telegram import _mention_entities

    me = User(id=1, is_bot=True, first_name="Bot", username="fake_ai_bot")
    message = Message(message_id=1, date=0, chat=Chat(id=GROUP, type="supergroup"), text=text,
                      entities=[MessageEntity(**e) for e in _mention_entities(text)])
    assert addressed_to(message, me) and without_mentions(message, me) == question
