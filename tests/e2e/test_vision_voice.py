"""Photos, voice and instruction edits end to end (`python -m bot` against the fakes): a photo's question
answered by the label that can see with the image in the provider's request, and a follow-up about it; a
voice message transcribed (after a failing transcription provider) and answered; `/edit remove background`
and `/edit make the sky purple` served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Database, StartBot
from tests.e2e.flows import all_text, eventually
from tests.e2e.harness import FREE_CREDITS, PRIMARY_KEY, SECONDARY_REPLY, Fakes
from tests.fakes.openai import PNG_1X1, openai_error

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

# The primary (OpenRouter-style) chats but is given no sight here; the secondary (OpenAI) sees, edits and
# transcribes; "whisper" is an OpenAI-style transcription service on the primary's fake, tried first.
PROVIDERS = """\
[providers.primary]
kind = "openrouter"
base_url = "{primary}"
timeout_s = 5
models = {{ text = "openai/gpt-4o-mini" }}
options = {{ vision = false }}

[providers.secondary]
kind = "openai"
base_url = "{secondary}"
timeout_s = 5
models = {{ text = "gpt-4o-mini", image_edit = "gpt-image-1", transcription = "gpt-4o-mini-transcribe" }}
prices = {{ text_in_per_1k = 0.00015, text_out_per_1k = 0.0006, image_edit = 0.04, transcription_per_minute = 0.006 }}

[providers.whisper]
kind = "openai"
base_url = "{primary}"
timeout_s = 5
models = {{ transcription = "whisper-1" }}

[routes]
text = ["primary", "secondary"]
image_edit = ["secondary"]
transcription = ["whisper", "secondary"]

[labels."Fast chat"]
category = "text"
credits = 1

[labels."Eyes"]
category = "text"
credits = 3
vision = true
route = ["secondary"]

[labels."Photo edit"]
category = "image_edit"
credits = 4

[labels."Transcription"]
category = "transcription"
credits = 2

[manager]
quick_retry_delay_s = 0
"""


@pytest.fixture
def providers_file(tmp_path: Path, fakes: Fakes) -> Path:
    path = tmp_path / "providers.toml"
    path.write_text(PROVIDERS.format(primary=fakes.primary.url, secondary=fakes.secondary.url), encoding="utf-8")
    return path


async def test_a_photo_is_answered_by_the_label_that_sees_and_a_follow_up_still_sees_it(
        fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg, user = fakes.telegram, 3101
    await start_bot(WHISPER_API_KEY=PRIMARY_KEY)
    tg.push_photo(user, PNG_1X1, caption="What is in this picture?")
    await tg.wait_for(lambda: SECONDARY_REPLY in all_text(tg, user), timeout=20)
    assert "Fast chat can't see images, so Eyes answers this one" in all_text(tg, user)
    [call] = fakes.secondary.calls_to("/chat/completions")
    question = call.json["messages"][-1]
    assert question["content"][0] == {"type": "text", "text": "What is in this picture?"}
    assert question["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,iVBORw0KGgo")
    assert fakes.primary.calls_to("/chat/completions") == []  # it cannot see: never asked
    await eventually(lambda: [r for r in db.requests(user) if r["status"] == "served"], what="the first served")
    assert db.credits(user) == FREE_CREDITS - 3  # the seeing label's price

    # a follow-up in words: the photo comes again from Telegram, by the id the history kept; the user's own
    # label serves it, its provider that cannot see skipped
    tg.push_message(user, "What colour is it?")
    await eventually(lambda: len(fakes.secondary.calls_to("/chat/completions")) == 2, what="the follow-up")
    follow_up = fakes.secondary.calls_to("/chat/completions")[-1].json["messages"]
    assert follow_up[0]["content"][1]["image_url"]["url"] == question["content"][1]["image_url"]["url"]
    assert follow_up[-1] == {"role": "user", "content": "What colour is it?"}
    assert fakes.primary.calls_to("/chat/completions") == []
    await eventually(lambda: len([r for r in db.requests(user) if r["status"] == "served"]) == 2, what="served")

    # bounded: two more photos; the request sends the one just sent and the newest before it, no more
    for _ in range(2):
        tg.push_photo(user, PNG_1X1)  # no caption: "describe this image"
        served = len([r for r in db.requests(user) if r["status"] == "served"]) + 1
        await eventually(lambda n=served: len([r for r in db.requests(user) if r["status"] == "served"]) == n,
                         what="a photo served")
    described = fakes.secondary.calls_to("/chat/completions")[-1].json["messages"]
    images = [p for m in described if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]
    assert len(images) == 2
    assert described[0]["content"] == "[image]\nWhat is in this picture?"  # the oldest one told, not sent
    assert described[-1]["content"][0]["text"] == "Describe this image."
    stored = db.rows("SELECT content FROM chat_history WHERE role = 'user' ORDER BY id")
    assert all(len(row["content"]) < 200 for row in stored)  # a reference, never the bytes


async def test_a_voice_message_is_transcribed_after_a_failing_provider_and_answered(
        fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg, user = fakes.telegram, 3102
    fakes.primary.fail_next(503, openai_error("The engine is currently overloaded", "server_error"),
                            path_contains="/audio/transcriptions")
    fakes.secondary.transcript = "what is the capital of France"
    await start_bot(WHISPER_API_KEY=PRIMARY_KEY)
    tg.push_voice(user, b"OggS\x00\x02 opus voice note", duration=90)
    await tg.wait_for(lambda: "Primary model says hello" in all_text(tg, user)
                      or SECONDARY_REPLY in all_text(tg, user), timeout=20)
    texts = [m.plain for m in tg.messages(user)]
    assert texts[0] == "🎤 what is the capital of France"  # the transcript first, then the answer
    [heard] = fakes.secondary.calls_to("/audio/transcriptions")
    assert heard.filenames == {"file": "audio.ogg"} and heard.form["file"] == b"OggS\x00\x02 opus voice note"
    assert len(fakes.primary.calls_to("/audio/transcriptions")) == 1  # tried first, failed, fell back
    asked = fakes.primary.calls_to("/chat/completions")[-1].json["messages"][-1]
    assert asked == {"role": "user", "content": "what is the capital of France"}
    [request] = await eventually(lambda: [r for r in db.requests(user) if r["status"] == "served"],
                                 what="the voice message served")
    assert db.credits(user) == FREE_CREDITS - 3  # transcription + chat
    assert request["credits_charged"] == 3 and request["cost_micros"] >= 9_000  # 1.5 minutes at $0.006 + chat


async def test_a_voice_message_whose_answer_fails_refunds_both_labels(
        fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg, user = fakes.telegram, 3103
    fakes.primary.fail_next(400, openai_error("bad", "invalid_request_error"), path_contains="/chat/completions")
    await start_bot(WHISPER_API_KEY=PRIMARY_KEY)
    tg.push_voice(user, b"OggS voice", duration=5)
    await eventually(lambda: [r for r in db.requests(user) if r["status"] == "failed"], what="the request failed")
    [request] = db.requests(user)
    assert request["credits_charged"] == 3 and request["credits_refunded"] == 3
    assert db.credits(user) == FREE_CREDITS


@pytest.mark.parametrize(("caption", "prompt"), [
    ("/edit remove background", "Remove the background completely; keep the main subject exactly as it is."),
    ("/edit make the sky purple", "make the sky purple"),
])
async def test_edits_by_operation_name_and_by_instruction_are_served(
        fakes: Fakes, start_bot: StartBot, db: Database, caption: str, prompt: str) -> None:
    tg, user = fakes.telegram, 3104
    await start_bot(WHISPER_API_KEY=PRIMARY_KEY)
    tg.push_photo(user, PNG_1X1, caption=caption)
    [result] = await tg.wait_for(lambda: tg.media(user, "photo") or tg.media(user, "document"), timeout=20)
    assert result.file is not None and result.file.data == PNG_1X1
    [call] = fakes.secondary.calls_to("/images/edits")
    assert call.form["prompt"] == prompt and call.form["image"] == PNG_1X1 and call.form["model"] == "gpt-image-1"
    assert ("background" in call.form) == caption.endswith("background")
    await eventually(lambda: db.credits(user) == FREE_CREDITS - 4, what="the edit charged")
