"""Media end to end: /image uploads the provider's bytes as a photo (shared bot); a video job survives
kill -9 of the bot (a bot of its own), which afterwards stops cleanly on SIGTERM."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Database, Live, StartBot
from tests.e2e.flows import eventually
from tests.e2e.harness import FREE_CREDITS, Fakes
from tests.fakes.openai import PNG_1X1
from tests.fakes.replicate import FILE_BYTES

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]


async def test_image_is_uploaded_as_a_photo(live: Live) -> None:
    tg, user = live.tg, 2201
    tg.push_message(user, "/image a red square")
    [photo] = await tg.wait_for(lambda: tg.media(user, "photo"), timeout=20)
    assert photo.file is not None and photo.file.data == PNG_1X1
    calls = [c for c in live.fakes.secondary.calls_to("/images/generations") if "a red square" in c.json["prompt"]]
    assert len(calls) == 1
    await eventually(lambda: live.db.credits(user) == FREE_CREDITS - 5, what="image credits charged")


async def test_video_job_survives_a_crash(fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg, replicate, user = fakes.telegram, fakes.replicate, 2202
    bot = await start_bot()
    tg.push_message(user, "/video a cat surfing")
    [job_id] = await eventually(db.job_ids, what="the job id stored")
    assert replicate.creates == 1 and job_id in replicate.predictions

    await bot.kill()  # kill -9 while the job runs
    replicate.polls_until_done = 0  # the job finishes while the bot is down
    restarted = await start_bot()
    [video] = await tg.wait_for(lambda: tg.media(user, "video"), timeout=30)
    assert video.file is not None and video.file.data == FILE_BYTES["mp4"]
    assert replicate.creates == 1  # resumed by polling, never created again
    [request] = await eventually(lambda: [r for r in db.requests(user) if r["status"] == "served"],
                                 what="the resumed request served")
    assert request["provider_job_id"] == job_id and request["credits_charged"] == 20
    assert db.credits(user) == FREE_CREDITS - 20
    assert await restarted.stop() == 0  # SIGTERM: polling stops, the process exits cleanly
