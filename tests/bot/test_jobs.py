"""Nothing lost: a job running at shutdown is resumed (polled, not re-created) at the next start and
delivered; a failed resumed job is refunded and the user told; stale reservations are settled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from db.periods import utcnow
from db.repo.accounting import reserve_request
from db.repo.users import grant_credits
from tests.bot.core_harness import CoreHarness, eventually
from tests.fakes.replicate import FILE_BYTES

USER = 2002


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        await harness.say(USER, "/start")
        assert harness.app is not None
        async with harness.app.sessions() as session, session.begin():
            await grant_credits(session, USER, 30, reason="grant")
        yield harness


async def start_video_then_stop_the_bot(h: CoreHarness) -> str:
    running = h.say_later(USER, "/video a cat surfing")
    await eventually(lambda: h.rows("SELECT 1 FROM requests WHERE provider_job_id IS NOT NULL"))
    assert h.app is not None
    await h.app.aclose()  # a shutdown, not a /cancel: the paid job must stay open
    h.app = None
    await asyncio.wait_for(running, 5)
    [request] = h.requests(USER)
    assert request["status"] == "running" and request["credits_refunded"] == 0
    return str(request["provider_job_id"])


async def test_a_video_job_running_at_shutdown_is_resumed_and_delivered(h: CoreHarness) -> None:
    job_id = await start_video_then_stop_the_bot(h)
    h.replicate.polls_until_done = 0  # it finished while the bot was down
    await h.boot()
    await h.tg.wait_for(lambda: h.tg.media(USER, "video"), timeout=10)
    [video] = h.tg.media(USER, "video")
    assert video.file is not None and video.file.data == FILE_BYTES["mp4"]
    assert h.replicate.creates == 1  # polled, never created again
    progress = [m for m in h.tg.sent[USER] if m.history and m.history[0].startswith("⏳ Making the video")]
    assert progress and all(m.deleted for m in progress)  # shown while working, replaced by the result
    assert "Provider: replicate" in progress[-1].history[0]
    await eventually(lambda: h.requests(USER)[0]["status"] == "served")
    [request] = h.requests(USER)
    assert request["provider_job_id"] == job_id and request["credits_charged"] == 20
    assert h.credits(USER) == 20


async def test_a_resumed_job_that_failed_is_refunded_and_the_user_told(h: CoreHarness) -> None:
    await start_video_then_stop_the_bot(h)
    h.replicate.polls_until_done = 0
    h.replicate.fail_with = "CUDA out of memory"
    await h.boot()
    await h.tg.wait_for(lambda: "could not be finished" in (h.tg.last_text(USER) or ""), timeout=10)
    await eventually(lambda: h.requests(USER)[0]["status"] == "failed")
    assert h.credits(USER) == 40 and h.tg.media(USER) == []


async def test_stale_reservations_without_a_job_are_refunded_at_start(h: CoreHarness) -> None:
    assert h.app is not None
    async with h.app.sessions() as session, session.begin():
        old = await reserve_request(session, tg_id=USER, update_id=None, label="Fast chat", category="text",
                                    prompt="lost in a crash", credits=1, now=utcnow() - timedelta(hours=2))
        fresh = await reserve_request(session, tg_id=USER, update_id=None, label="Fast chat", category="text",
                                      prompt="still being served", credits=1)
    assert old.ok and fresh.ok and h.credits(USER) == 38
    await h.boot()
    statuses = {r["id"]: r["status"] for r in h.requests(USER)}
    assert statuses[old.request_id] == "failed" and statuses[fresh.request_id] == "pending"
    assert h.credits(USER) == 39
