"""Nothing lost: a job running at shutdown is resumed (polled, not re-created) at the next start and
delivered; a failed resumed job is refunded and the user told; orphans are finished at start-up."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from db.periods import utcnow
from db.repo.lifecycle import reserve_request
from tests.bot.core_harness import CoreHarness, eventually
from tests.fakes.replicate import FILE_BYTES

USER = 2002


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        await harness.user_with_credits(USER, 40)
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


async def test_a_job_asked_in_a_forum_topic_is_resumed_into_that_topic(h: CoreHarness) -> None:
    group, topic = -100_900, 7
    running = asyncio.create_task(h.feed(h.tg.push_group_text(group, USER, "/video@fake_ai_bot a cat surfing",
                                                              thread_id=topic)))
    await eventually(lambda: h.rows("SELECT 1 FROM requests WHERE provider_job_id IS NOT NULL"))
    assert h.app is not None
    await h.app.aclose()
    h.app = None
    await asyncio.wait_for(running, 5)
    [request] = h.requests(USER)
    assert (request["chat_id"], request["thread_id"], request["status"]) == (group, topic, "running")
    h.replicate.polls_until_done = 0
    await h.boot()  # a new process: nothing of the update in memory, only the row
    await h.tg.wait_for(lambda: h.tg.media(group, "video"), timeout=10)
    [video] = h.tg.media(group, "video")
    assert video.payload.get("message_thread_id") == topic  # not the group's main chat
    progress = [m for m in h.tg.sent[group] if m.history and m.history[0].startswith("⏳")]
    assert progress and all(m.payload.get("message_thread_id") == topic for m in progress)
    await eventually(lambda: h.requests(USER)[0]["status"] == "served")


async def test_a_resumed_job_that_failed_is_refunded_and_the_user_told(h: CoreHarness) -> None:
    await start_video_then_stop_the_bot(h)
    h.replicate.polls_until_done = 0
    h.replicate.fail_with = "CUDA out of memory"
    await h.boot()
    await h.tg.wait_for(lambda: "could not be finished" in (h.tg.last_text(USER) or ""), timeout=10)
    await eventually(lambda: h.requests(USER)[0]["status"] == "failed")
    assert h.credits(USER) == 40 and h.tg.media(USER) == []


async def test_orphans_are_finished_at_start_and_live_leases_left_alone(h: CoreHarness) -> None:
    """An expired lease and an earlier start of this very process are orphans now; a lease another host
    still holds is not touched."""
    assert h.app is not None
    now = utcnow()
    async with h.app.sessions() as session, session.begin():
        async def reserve(owner: str, lease_s: float, prompt: str) -> int:
            done = await reserve_request(session, owner=owner, lease_until=now + timedelta(seconds=lease_s),
                                         tg_id=USER, update_id=None, label="Fast chat", category="text",
                                         prompt=prompt, credits=1)
            assert done.ok and done.request_id is not None
            return done.request_id

        expired = await reserve("elsewhere:1:aaaa", -1, "its host went away")
        earlier_start = await reserve(f"{h.app.life.leases.owner.split(':')[0]}:{os.getpid()}:0000", 600,
                                      "an earlier start of this process")
        alive = await reserve("elsewhere:2:bbbb", 600, "still being served on another host")
    assert h.credits(USER) == 37
    await h.boot()
    statuses = {r["id"]: r["status"] for r in h.requests(USER)}
    assert statuses == {expired: "failed", earlier_start: "failed", alive: "running"}
    assert h.credits(USER) == 39
    await h.tg.wait_for(lambda: "could not be finished" in (h.tg.last_text(USER) or ""), timeout=5)


async def test_cancel_stops_a_resumed_job_and_refunds_it(h: CoreHarness) -> None:
    """A job resumed after a restart is the user's running request like any other: /cancel refunds it,
    stops the polling and asks the provider to stop (it was answered "cancelled before it started, nothing
    was charged", and the job ran on)."""
    job_id = await start_video_then_stop_the_bot(h)
    polls = h.replicate.polls
    await h.boot()  # the job is still running at the provider: the new start resumes it
    await eventually(lambda: h.replicate.polls > polls)
    await h.feed(h.tg.push_message(USER, "/cancel"))
    assert h.tg.last_text(USER) == "🛑 Cancelled. 20 credits refunded."
    await eventually(lambda: h.requests(USER)[0]["status"] == "canceled")
    assert h.credits(USER) == 40
    await eventually(lambda: h.replicate.predictions[job_id].status == "canceled")
    polls_after = h.replicate.polls
    await asyncio.sleep(0.3)
    assert h.replicate.polls == polls_after and h.tg.media(USER) == []
