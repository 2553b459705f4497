"""Groups, documents and drafts end to end, on the shared bot (`python -m bot` against the fakes):

- a PDF with a question: the PDF's text reaches the provider; an encrypted PDF is refused, nothing charged;
- in a group: a mention and a reply to the bot are answered, a plain message is ignored (no request row),
  `/start@otherbot` is ignored; a photo whose caption mentions the bot is answered by the label that sees,
  the image in the provider's request, and a photo for nobody is ignored (no user row);
- a private chat's streamed answer is shown as drafts, then sent as one message; a group's is edited.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Live
from tests.e2e.flows import eventually, settle
from tests.e2e.harness import FREE_CREDITS, PRIMARY_REPLY, SECONDARY_REPLY
from tests.fakes.openai import PNG_1X1
from tests.fakes.telegram import GroupPlace
from tests.support.pdfs import make_pdf

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]
BOT = "@fake_ai_bot"


def _last_prompts(live: Live) -> list[str]:
    return [c.json["messages"][-1]["content"] for c in live.fakes.primary.calls_to("/chat/completions")
            if isinstance(c.json, dict)]


async def test_a_pdf_question_is_answered_from_the_pdfs_text(live: Live) -> None:
    tg, db, user = live.tg, live.db, 2601
    pdf = make_pdf(["Quarterly report", "The secret ingredient is cardamom."])
    tg.push_document(user, pdf, "report.pdf", "application/pdf", "What is the secret ingredient?")
    await tg.wait_for(lambda: PRIMARY_REPLY in tg.texts(user), timeout=20)
    [prompt] = [p for p in _last_prompts(live) if p.startswith("What is the secret ingredient?")]
    assert "cardamom" in prompt and '<document name="report.pdf" pages="2">' in prompt
    [request] = await eventually(lambda: [r for r in db.requests(user) if r["status"] == "served"],
                                 what="the request served")
    assert request["prompt"] == "What is the secret ingredient?\n[report.pdf]"
    await eventually(lambda: db.credits(user) == FREE_CREDITS - 1, what="one credit charged")


async def test_an_encrypted_pdf_is_refused_and_nothing_is_charged(live: Live) -> None:
    tg, db, user = live.tg, live.db, 2602
    calls_before = len(live.fakes.primary.calls_to("/chat/completions"))
    tg.push_document(user, make_pdf(["hidden"], user_password="s3cret"), "locked.pdf", "application/pdf", "Read it")
    [refusal] = await tg.wait_for(lambda: tg.texts(user), timeout=20)
    assert "password" in refusal and "Nothing was charged" in refusal
    await settle(tg)
    assert db.requests(user) == [] and db.credits(user) == FREE_CREDITS
    assert len(live.fakes.primary.calls_to("/chat/completions")) == calls_before


async def test_in_a_group_mentions_and_replies_are_answered_and_the_rest_ignored(live: Live) -> None:
    tg, db, group, alice, bob = live.tg, live.db, -100_2603, 2603, 2604
    tg.push_group_text(group, alice, f"{BOT} what's the capital of France?")
    [answer] = await tg.wait_for(lambda: [m for m in tg.messages(group) if m.plain == PRIMARY_REPLY], timeout=20)
    assert "Tester: what's the capital of France?" in _last_prompts(live)

    tg.push_group_text(group, bob, "and of Italy?", reply_to=answer.message_id)
    await tg.wait_for(lambda: [m.plain for m in tg.messages(group)].count(PRIMARY_REPLY) == 2, timeout=20)
    await eventually(lambda: [r["status"] for r in db.requests(bob)] == ["served"], what="bob's request served")

    tg.push_group_text(group, bob, "lunch anyone?")  # members talking among themselves
    tg.push_group_text(group, bob, "/start@other_bot")  # another bot's command
    await settle(tg)
    assert len(tg.messages(group)) == 2
    assert len(db.requests(bob)) == 1 and db.credits(bob) == FREE_CREDITS - 1
    assert [r["chat_id"] for r in db.requests(alice)] == [group]


async def test_in_a_group_a_photo_for_the_bot_is_seen_and_a_photo_for_nobody_ignored(live: Live) -> None:
    tg, db, group, alice, carol = live.tg, live.db, -100_2606, 2606, 2607
    seen_before = len(live.fakes.secondary.calls_to("/chat/completions"))
    tg.push_photo(carol, PNG_1X1, "holiday snap", first_name="Carol", in_group=GroupPlace(group))  # for nobody
    tg.push_photo(alice, PNG_1X1, f"{BOT} what is in this picture?", first_name="Alice", in_group=GroupPlace(group))
    [answer] = await tg.wait_for(lambda: [m for m in tg.messages(group) if m.plain == SECONDARY_REPLY], timeout=20)
    assert answer.payload["reply_to_message"]["from"]["id"] == alice
    [call] = live.fakes.secondary.calls_to("/chat/completions")[seen_before:]
    text, image = call.json["messages"][-1]["content"]
    assert text == {"type": "text", "text": "Alice: what is in this picture?"}
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,iVBORw0KGgo")
    [request] = await eventually(lambda: [r for r in db.requests(alice) if r["status"] == "served"],
                                 what="alice's photo served")
    assert (request["chat_id"], request["label"]) == (group, "Eyes")
    await settle(tg)
    assert db.rows("SELECT id FROM users WHERE id = ?", carol) == [] and db.requests(carol) == []
    assert "holiday snap" not in str([c.json for c in live.fakes.secondary.calls_to("/chat/completions")])


async def test_a_private_answer_streams_as_drafts_and_a_group_answer_as_edits(live: Live) -> None:
    tg, user, group = live.tg, 2605, -100_2605
    live.fakes.primary.reply_text = " ".join(f"word{i}" for i in range(40))
    live.fakes.primary.stream_pace_s = 0.05  # two seconds of streaming: several drafts at 0.2 s apart
    try:
        tg.push_message(user, "Tell me a long story")
        await tg.wait_for(lambda: tg.texts(user), timeout=20)
        [message] = tg.messages(user)
        assert message.plain == live.fakes.primary.reply_text and message.edits == 0
        drafts = tg.drafts[user]
        assert len(drafts) >= 3 and len({d.draft_id for d in drafts}) == 1
        assert all(live.fakes.primary.reply_text.startswith(d.plain) for d in drafts)
        assert len(tg.calls_of("sendMessageDraft")) >= len(drafts)

        tg.push_group_text(group, user, f"{BOT} tell the group a long story")
        await tg.wait_for(lambda: [m for m in tg.messages(group) if m.plain == live.fakes.primary.reply_text],
                          timeout=20)
        [reply] = tg.messages(group)
        assert reply.edits >= 1 and tg.drafts[group] == []
    finally:
        live.fakes.primary.stream_pace_s = 0.0
