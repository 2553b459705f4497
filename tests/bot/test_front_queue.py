"""A front of the distributed mode, through the real app: it reserves, hands the request to the queue and
calls no provider itself. The queue here is a fake that keeps what it is given (the real one, taskiq over
Redis, runs in tests/e2e/test_distributed.py); these are the front's own rules:

- a request is reserved for a worker (status reserved, owner "queue"), charged, and enqueued with the
  conversation read in the reservation's transaction;
- a queue that refuses it: the request fails, is refunded, and the user is told;
- one request at a time holds across fronts: a second message while one is queued is refused as busy,
  nothing charged; and so is one for a user whom another front is reserving for right now;
- /cancel refunds a queued request and tells the workers to stop it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.queue import QUEUE_OWNER, Job
from db.periods import utcnow
from tests.bot.core_harness import FIRST_REPLY, SECOND_REPLY, CoreHarness

USER = 4101


@dataclass
class KeptQueue:
    """Keeps every job; `refuse` makes enqueue fail as a Redis outage would; `busy_users` are being
    reserved for by another front."""

    jobs: list[Job] = field(default_factory=list)
    stops: list[tuple[list[int], list[int]]] = field(default_factory=list)
    refuse: bool = False
    busy_users: set[int] = field(default_factory=set)

    def lease_until(self) -> datetime:
        return utcnow() + timedelta(minutes=10)

    async def enqueue(self, job: Job) -> None:
        if self.refuse:
            raise ConnectionError("Redis is gone")
        self.jobs.append(job)

    @contextlib.asynccontextmanager
    async def reserving(self, user_id: int) -> AsyncIterator[bool]:
        yield user_id not in self.busy_users

    async def stop(self, canceled: list[int], delivering: list[int]) -> None:
        self.stops.append((canceled, delivering))


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[tuple[CoreHarness, KeptQueue]]:
    queue = KeptQueue()
    async with CoreHarness.start(tmp_path, queue=queue) as harness:
        await harness.user_with_credits(USER, 10)
        yield harness, queue


async def test_a_chat_is_reserved_for_a_worker_and_enqueued_with_its_history(
        front: tuple[CoreHarness, KeptQueue]) -> None:
    h, queue = front
    await h.feed(h.tg.push_message(USER, "What is a lease?"))
    [job] = queue.jobs
    [request] = h.requests(USER)
    assert (request["status"], request["owner"], request["credits_charged"]) == ("reserved", QUEUE_OWNER, 1)
    assert job.request_id == request["id"] and job.work == "text" and job.user_id == USER
    assert job.request.messages[-1].content == "What is a lease?"
    assert h.credits(USER) == 9
    assert not h.first.calls_to("/chat/completions") and not h.second.calls_to("/chat/completions")
    assert not [t for t in h.tg.texts(USER) if FIRST_REPLY in t or SECOND_REPLY in t]  # a worker answers


async def test_a_queue_that_refuses_the_request_refunds_it_and_says_so(
        front: tuple[CoreHarness, KeptQueue]) -> None:
    h, queue = front
    queue.refuse = True
    await h.feed(h.tg.push_message(USER, "Anyone home?"))
    [request] = h.requests(USER)
    assert (request["status"], request["error_kind"], request["credits_refunded"]) == ("failed", "queue", 1)
    assert h.credits(USER) == 10
    assert "hand your request over" in (h.tg.last_text(USER) or "") and "refunded" in (h.tg.last_text(USER) or "")


async def test_one_request_at_a_time_holds_across_fronts(front: tuple[CoreHarness, KeptQueue]) -> None:
    h, queue = front
    await h.feed(h.tg.push_message(USER, "First question"))
    await h.feed(h.tg.push_message(USER, "Second question"))  # the first still waits in the queue
    assert len(queue.jobs) == 1
    assert [r["status"] for r in h.requests(USER)] == ["reserved", "refused"]
    assert h.requests(USER)[1]["error_kind"] == "busy" and h.credits(USER) == 9

    other = USER + 1
    await h.user_with_credits(other, 10)
    queue.busy_users.add(other)  # another front is writing a reservation for this user right now
    await h.feed(h.tg.push_message(other, "Me too"))
    assert [r["status"] for r in h.requests(other)] == ["refused"] and h.credits(other) == 10
    assert "wait" in (h.tg.last_text(other) or "").lower()


async def test_cancel_refunds_a_queued_request_and_tells_the_workers(front: tuple[CoreHarness, KeptQueue]) -> None:
    h, queue = front
    await h.feed(h.tg.push_message(USER, "A long story, please"))
    [job] = queue.jobs
    await h.feed(h.tg.push_message(USER, "/cancel"))
    assert h.tg.last_text(USER) == "🛑 Cancelled. 1 credit refunded."
    [request] = h.requests(USER)
    assert request["status"] == "canceled" and h.credits(USER) == 10
    assert queue.stops == [([job.request_id], [])]
