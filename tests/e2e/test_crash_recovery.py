"""kill -9 of `python -m bot` in the middle of a request, then a start at once on the same database.

A chat request waiting on a slow provider has no provider job to come back to: the next start must
fail it, refund it and tell the user, and with the default lease and sweep settings it must do so at
start-up (the dead pid is noticed), long before the killed run's lease would have run out. A video
request whose Replicate job id is already stored must instead be resumed: polled, never created again,
delivered and charged once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from datetime import UTC, datetime

import pytest

from tests.e2e.conftest import Database, StartBot
from tests.e2e.flows import all_text, chat_calls, eventually
from tests.e2e.harness import FREE_CREDITS, PRIMARY_REPLY, SECONDARY_REPLY, BotProcess
from tests.fakes.replicate import FILE_BYTES
from tests.support.botenv import Fakes

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]

RECOVERY_BOUND_S = 60.0  # the promise to the user: told and refunded within a minute of the restart
OPEN = ("reserved", "running")


async def kill_9(bot: BotProcess) -> None:
    """SIGKILL, then reap it: an unreaped zombie still answers `kill(pid, 0)` and would look alive."""
    assert bot.proc is not None and bot.proc.returncode is None
    os.kill(bot.pid, signal.SIGKILL)
    assert await asyncio.wait_for(bot.proc.wait(), 10) == -signal.SIGKILL


def ledger(db: Database, user: int) -> list[sqlite3.Row]:
    return db.rows("SELECT delta, reason, request_id FROM credit_ledger WHERE user_id = ? ORDER BY id", user)


def owner_pid(request: sqlite3.Row) -> int:
    return int(str(request["owner"]).split(":")[1])  # owner ids are host:pid:token


def stored_utc(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # naive UTC in the column


async def test_a_chat_request_killed_mid_flight_is_refunded_and_the_user_told_at_the_next_start(
        fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg, user, prompt = fakes.telegram, 2301, "Tell me a very long story"
    bot = await start_bot()  # default REQUEST_LEASE_SECONDS and SWEEP_INTERVAL_SECONDS on purpose
    fakes.primary.hang = True  # the provider never answers: the request stays open until the kill
    tg.push_message(user, prompt)
    await eventually(lambda: chat_calls(fakes.primary, prompt), what="the primary provider received the call")
    [request] = await eventually(lambda: [r for r in db.requests(user) if r["status"] in OPEN],
                                 what="the request open in the database")
    await eventually(lambda: db.credits(user) == FREE_CREDITS - 1, what="the request charged")
    assert owner_pid(request) == bot.pid and request["provider_job_id"] is None

    await kill_9(bot)
    fakes.primary.hang = False  # had the next start wrongly asked again, it would be answered and seen
    [left] = db.requests(user)
    assert left["status"] in OPEN and left["credits_charged"] == 1 and left["credits_refunded"] == 0
    lease_runs_out = stored_utc(left["lease_until"])

    loop = asyncio.get_running_loop()
    restart = loop.time()
    await start_bot()
    polling_after_s = loop.time() - restart
    told = await tg.wait_for(lambda: [t for t in tg.texts(user) if "could not be finished" in t],
                             timeout=RECOVERY_BOUND_S - (loop.time() - restart))
    told_after_s = loop.time() - restart
    told_at = datetime.now(UTC)
    [closed] = await eventually(lambda: [r for r in db.requests(user) if r["status"] == "failed"],
                                within_s=max(1.0, RECOVERY_BOUND_S - (loop.time() - restart)),
                                what="the request closed as failed")
    closed_after_s = loop.time() - restart
    print(f"\nchat after kill -9: polling {polling_after_s:.2f}s, user told {told_after_s:.2f}s, "
          f"request failed in db {closed_after_s:.2f}s after the restart; "
          f"{(lease_runs_out - told_at).total_seconds():.1f}s of the dead run's lease were left")

    assert told_after_s < RECOVERY_BOUND_S and closed_after_s < RECOVERY_BOUND_S
    assert "refunded" in told[-1], told
    # Told before the dead run's lease ran out: its owner was known gone, not waited out.
    assert told_at < lease_runs_out, (told_at, lease_runs_out)

    assert closed["id"] == request["id"]
    assert closed["credits_charged"] == 1 and closed["credits_refunded"] == closed["credits_charged"]
    assert db.credits(user) == FREE_CREDITS
    entries = ledger(db, user)
    assert [(e["delta"], e["reason"]) for e in entries if e["request_id"] == request["id"]] == \
        [(-1, "charge"), (1, "refund")]
    assert db.credits(user) == sum(e["delta"] for e in entries)
    # Failed and refunded, not tried again on either provider.
    assert len(chat_calls(fakes.primary, prompt)) == 1 and not chat_calls(fakes.secondary, prompt)
    shown = all_text(tg, user)
    assert PRIMARY_REPLY not in shown and SECONDARY_REPLY not in shown


async def test_a_video_job_killed_mid_flight_is_resumed_by_polling_and_delivered_at_the_next_start(
        fakes: Fakes, start_bot: StartBot, db: Database) -> None:
    tg, replicate, user = fakes.telegram, fakes.replicate, 2302
    replicate.polls_until_done = 10**9  # the job keeps running until this test lets it finish
    bot = await start_bot()
    tg.push_message(user, "/video a fox crossing a frozen river")
    [job_id] = await eventually(db.job_ids, what="the provider job id stored")
    assert replicate.creates == 1 and job_id in replicate.predictions
    await eventually(lambda: replicate.polls > 0, what="the job polled by the first run")
    [request] = db.requests(user)
    assert request["status"] in OPEN and owner_pid(request) == bot.pid

    await kill_9(bot)
    polls_before = replicate.polls

    loop = asyncio.get_running_loop()
    restart = loop.time()
    await start_bot()
    polling_after_s = loop.time() - restart
    await eventually(lambda: replicate.polls > polls_before, within_s=RECOVERY_BOUND_S,
                     what="the job polled again after the restart")
    resumed_after_s = loop.time() - restart
    assert replicate.predictions[job_id].status == "processing"  # still running: the resume found it so
    replicate.polls_until_done = 0  # now it finishes, on the restarted run's next poll

    [video] = await tg.wait_for(lambda: tg.media(user, "video"), timeout=20)
    delivered_after_s = loop.time() - restart
    [served] = await eventually(lambda: [r for r in db.requests(user) if r["status"] == "served"],
                                what="the resumed request served")
    print(f"\nvideo after kill -9: polling {polling_after_s:.2f}s, job polled again {resumed_after_s:.2f}s, "
          f"video delivered {delivered_after_s:.2f}s after the restart")

    assert video.file is not None and video.file.data == FILE_BYTES["mp4"]
    assert replicate.creates == 1  # resumed by polling, never created again
    assert len(tg.media(user, "video")) == 1
    assert served["id"] == request["id"] and served["provider_job_id"] == job_id
    assert served["credits_charged"] == 20 and served["credits_refunded"] == 0
    assert db.credits(user) == FREE_CREDITS - 20
    entries = ledger(db, user)
    assert [(e["delta"], e["reason"]) for e in entries if e["request_id"] == request["id"]] == [(-20, "charge")]
    assert db.credits(user) == sum(e["delta"] for e in entries)
