"""The distributed mode end to end: PostgreSQL + Redis + a front + two workers, as subprocesses.

The front receives updates, reserves and enqueues; a worker takes the request, calls the providers,
answers the user with its own Bot and closes the request. Proven here on the real services: a chat is
served by a worker and charged once; a failing provider falls back; /cancel from the front stops the
request in the worker and refunds it; and a worker killed with -9 in the middle of a video loses nothing:
the other worker resumes the provider job (polled, never created again), delivers it once, charges once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import E2E, _dump
from tests.e2e.distributed import PgDatabase, WorkerProcess, free_port, services
from tests.e2e.flows import chat_calls, eventually
from tests.e2e.harness import (
    FREE_CREDITS,
    PRIMARY_REPLY,
    SECONDARY_REPLY,
    BotProcess,
    Fakes,
)
from tests.fakes.openai import openrouter_error
from tests.fakes.replicate import FILE_BYTES

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]
REDIS_DB = 13  # a database of its own, emptied before the cluster starts
LEASE_S = 3


@dataclass
class Cluster:
    fakes: Fakes
    db: PgDatabase
    front: BotProcess
    workers: list[WorkerProcess]

    def dump(self) -> None:
        _dump(self.front, self.fakes)
        for worker in self.workers:
            print(f"----- worker log ({worker.log_path}) -----\n{worker.log()[-20000:]}")


@E2E(scope="module", loop_scope="package")
async def cluster(tmp_path_factory: pytest.TempPathFactory, mpl_dir: Path) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("distributed")
    async with services(tmp, REDIS_DB, MPLCONFIGDIR=str(mpl_dir), REQUEST_LEASE_SECONDS=str(LEASE_S),
                        SWEEP_INTERVAL_SECONDS="1") as (fakes, db, env):
        front = BotProcess(env, tmp / "front.log", fakes.telegram)
        workers = [WorkerProcess({**env, "METRICS_PORT": str(free_port())}, tmp / f"worker{n}.log", fakes.telegram)
                   for n in (1, 2)]
        try:
            await front.start()  # migrates the database before it polls
            for worker in workers:
                await worker.start()
            yield Cluster(fakes, db, front, workers)
        finally:
            for process in (front, *workers):
                await process.stop()


@E2E(loop_scope="package")
async def live(request: pytest.FixtureRequest, cluster: Cluster) -> AsyncIterator[Cluster]:
    for fake in (cluster.fakes.primary, cluster.fakes.secondary):
        fake.script.clear()
        fake.hang = False
    yield cluster
    if any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call")):
        cluster.dump()


def worker_pids(cluster: Cluster) -> set[int]:
    return {w.pid for w in cluster.workers if w.proc is not None and w.proc.returncode is None}


def owner_pid(request: dict[str, object]) -> int:
    return int(str(request["owner"]).split(":")[1])  # owner ids are host:pid:token


async def balanced(db: PgDatabase, user: int) -> int:
    """The user's balance, checked against the sum of the ledger."""
    credits = await db.credits(user)
    assert credits is not None
    assert credits == sum(e["delta"] for e in await db.ledger(user)), await db.ledger(user)
    return credits


async def test_a_chat_is_answered_by_a_worker_and_charged_once(live: Cluster) -> None:
    tg, user = live.fakes.telegram, 3101
    tg.push_message(user, "Hello over the queue")
    await tg.wait_for(lambda: PRIMARY_REPLY in " ".join(tg.texts(user)), timeout=30)
    [served] = await eventually(lambda: _served(live.db, user), what="the request served")
    assert owner_pid(served) in worker_pids(live)  # a worker ran it, not the front
    assert served["provider"] == "primary" and served["credits_charged"] == 1
    assert await balanced(live.db, user) == FREE_CREDITS - 1


async def test_workers_serve_prometheus_metrics_of_what_they_ran(live: Cluster) -> None:
    served = 0.0
    for worker in live.workers:
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{worker.env['METRICS_PORT']}/metrics") as response:
            assert response.status == 200
            families = {f.name: f for f in text_string_to_metric_families(await response.text())}
        assert "bot_queue_depth" in families
        served += sum(s.value for s in families["bot_requests"].samples
                      if s.name == "bot_requests_total" and s.labels["outcome"] == "served")
    assert served >= 1  # the chat of the test before, counted by the worker that ran it


async def test_a_failing_provider_falls_back_in_the_worker(live: Cluster) -> None:
    tg, user = live.fakes.telegram, 3102
    live.fakes.primary.fail_next(429, openrouter_error(429, "Rate limit exceeded"), {"Retry-After": "1"})
    tg.push_message(user, "Anyone there?")
    await tg.wait_for(lambda: SECONDARY_REPLY in " ".join(tg.texts(user)), timeout=30)
    [served] = await eventually(lambda: _served(live.db, user), what="the request served")
    assert served["provider"] == "secondary"
    attempts = await live.db.rows("SELECT provider, kind FROM attempts WHERE request_id = $1 ORDER BY position",
                                  served["id"])
    assert [(a["provider"], a["kind"]) for a in attempts] == [("primary", "rate_limited"), ("secondary", None)]
    assert await balanced(live.db, user) == FREE_CREDITS - 1


async def test_cancel_on_the_front_stops_the_request_in_the_worker_and_refunds(live: Cluster) -> None:
    tg, user, prompt = live.fakes.telegram, 3103, "A story that never comes"
    fakes = live.fakes
    fakes.primary.hang = fakes.secondary.hang = True  # whichever serves (the primary may still cool down)
    tg.push_message(user, prompt)
    await eventually(lambda: chat_calls(fakes.primary, prompt) or chat_calls(fakes.secondary, prompt),
                     what="the provider called by a worker")
    tg.push_message(user, "/cancel")
    await tg.wait_for(lambda: any("refunded" in t.lower() for t in tg.texts(user)), timeout=20)
    [request] = await eventually(lambda: _with_status(live.db, user, "canceled"), what="the request canceled")
    assert request["credits_refunded"] == request["credits_charged"] == 1
    assert await balanced(live.db, user) == FREE_CREDITS
    fakes.primary.hang = fakes.secondary.hang = False
    # the worker's slot was stopped, not left streaming: the user's next message is served at once
    tg.push_message(user, "And now?")
    await eventually(lambda: _served(live.db, user), within_s=30, what="the next message served")


async def test_a_provider_parked_by_one_worker_is_skipped_by_the_other(live: Cluster) -> None:
    """A 429 seen by one worker parks the provider for both: across the next requests, spread over the two
    workers, the parked provider is called once in all (the call that was refused), not once per worker."""
    tg, fakes = live.fakes.telegram, live.fakes
    for user in range(3140, 3160):  # earlier tests parked the primary for a second: wait until it serves
        tg.push_message(user, "Is the primary back?")
        [served] = await eventually(lambda u=user: _served(live.db, u), within_s=30, what="served")
        if served["provider"] == "primary":
            break
        await asyncio.sleep(0.5)
    fakes.primary.fail_next(429, openrouter_error(429, "Rate limit exceeded"), {"Retry-After": "60"})
    calls_before = len(fakes.primary.calls_to("/chat/completions"))
    tg.push_message(3110, "Who parks the provider?")
    await tg.wait_for(lambda: SECONDARY_REPLY in " ".join(tg.texts(3110)), timeout=30)
    assert len(fakes.primary.calls_to("/chat/completions")) == calls_before + 1  # the refused call
    owners: set[int] = set()
    for user in range(3111, 3131):  # until both workers have served a request after the 429
        tg.push_message(user, "Still parked?")
        [served] = await eventually(lambda u=user: _served(live.db, u), within_s=30, what="served")
        assert served["provider"] == "secondary"
        owners.add(owner_pid(served))
        if owners == worker_pids(live):
            break
    assert owners == worker_pids(live), "the requests all went to one worker: nothing was shown"
    assert len(fakes.primary.calls_to("/chat/completions")) == calls_before + 1


async def test_a_worker_killed_mid_video_loses_nothing(live: Cluster) -> None:
    tg, replicate, user = live.fakes.telegram, live.fakes.replicate, 3104
    replicate.polls_until_done = 10**9  # the job keeps running until this test lets it finish
    creates_before = replicate.creates
    tg.push_message(user, "/video a fox crossing a frozen river")
    [request] = await eventually(lambda: _with_job(live.db, user), what="the provider job id stored")
    assert replicate.creates == creates_before + 1
    victim = next(w for w in live.workers if w.proc is not None and w.pid == owner_pid(request))
    await eventually(lambda: replicate.polls > 0, what="the job polled")

    os.kill(victim.pid, signal.SIGKILL)
    assert victim.proc is not None and await asyncio.wait_for(victim.proc.wait(), 10) == -signal.SIGKILL
    polls_at_kill = replicate.polls
    await eventually(lambda: replicate.polls > polls_at_kill + 1, within_s=30, what="the job polled by the other")
    replicate.polls_until_done = 0

    [video] = await tg.wait_for(lambda: tg.media(user, "video"), timeout=30)
    [served] = await eventually(lambda: _served(live.db, user), what="the resumed request served")
    assert video.file is not None and video.file.data == FILE_BYTES["mp4"]
    assert replicate.creates == creates_before + 1  # resumed by polling, never created again
    assert len(tg.media(user, "video")) == 1
    survivor = next(w for w in live.workers if w is not victim)
    assert served["id"] == request["id"] and owner_pid(served) == survivor.pid
    assert served["credits_charged"] == 20 and served["credits_refunded"] == 0
    assert [(e["delta"], e["reason"]) for e in await live.db.ledger(user) if e["request_id"] == request["id"]] \
        == [(-20, "charge")]
    assert await balanced(live.db, user) == FREE_CREDITS - 20


async def _served(db: PgDatabase, user: int) -> list[dict[str, object]]:
    return await _with_status(db, user, "served")


async def _with_status(db: PgDatabase, user: int, status: str) -> list[dict[str, object]]:
    return [r for r in await db.requests(user) if r["status"] == status]


async def _with_job(db: PgDatabase, user: int) -> list[dict[str, object]]:
    return [r for r in await db.requests(user) if r["provider_job_id"] is not None and r["owner"]]
