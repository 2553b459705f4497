"""Not one credit lost at any seam: a fault injected at every step of a request's life.

Each case walks one request (a streamed chat answer, a chat whose providers all fail, a video made by an
async provider job) and at one step injects one fault (`tests.bot.faults`): a /cancel, a crash (then the
app started again on the same database, and the update delivered again, as Telegram does after a crash),
a database write that keeps failing (then the database healed), a statement failing once as a bug would,
or the user blocking the bot. Then one
sweep runs, with every lease expired. After it:

    every request is in exactly one terminal state;
    every balance equals the sum of its ledger rows;
    a request is refunded if and only if nothing of its answer reached the user;
    the user's last message says what really happened to their credits.

One moment cannot be told apart afterwards: a crash after Telegram took the first part of the answer and
before the database recorded it (the `delivered` step). The request then looks like one whose answer was
about to go out, and the user gets the benefit of the doubt: refunded, and told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from db.models import TERMINAL_STATUSES
from db.periods import utcnow
from tests.bot.core_harness import FIRST_REPLY, CoreHarness, eventually
from tests.bot.faults import STATEMENTS, Injector
from tests.fakes.replicate import FILE_BYTES

USER = 3003
REFUND_CLAIM = re.compile(r"\d+ credits? refunded")
START_CREDITS = 40

STEPS = {
    "chat": ("reserve", "provider", "delivering", "delivery", "delivered", "close"),
    "chat_fails": ("reserve", "provider", "close", "refund"),
    "video": ("reserve", "provider", "job_id", "delivering", "delivery", "close"),
}
FAULTS = ("cancel", "crash", "db_error", "db_bug", "blocked")
CASES = [(kind, step, fault) for kind, steps in STEPS.items() for step in steps for fault in FAULTS
         if fault not in ("db_error", "db_bug") or step in STATEMENTS]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        await harness.user_with_credits(USER, START_CREDITS)
        harness.live.life.durable.retry_delays = (0.01, 0.02)
        harness.replicate.polls_until_done = 2
        yield harness


def delivered(h: CoreHarness, kind: str) -> bool:
    if kind == "video":
        return any(m.media_kind == "video" for m in h.tg.sent.get(USER, []))
    return any(FIRST_REPLY[:5] in m.plain or any(FIRST_REPLY[:5] in t for t in m.history)
               for m in h.tg.sent.get(USER, []))


def ledger_sum(h: CoreHarness) -> int:
    return int(h.rows("SELECT COALESCE(SUM(delta), 0) AS s FROM credit_ledger WHERE user_id = ?", USER)[0]["s"])


async def restart(h: CoreHarness, injector: Injector, update_id: int) -> None:
    """A new process on the same database: its start-up sweep takes over what the dead one held, and
    Telegram delivers the update again."""
    old = h.app
    h.app = None
    injector.disarm()
    h.settings = h.settings.model_copy(update={"bot_token": SecretStr(h.tg.token)})
    await h.boot()
    assert h.app is not None
    h.app.life.durable.retry_delays = (0.01, 0.02)
    await h.feed(update_id)
    if old is not None:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(old.engine.dispose(), 2)


async def run_case(h: CoreHarness, kind: str, step: str, fault: str) -> None:
    injector = Injector(h, USER, step, fault, "sendVideo" if kind == "video" else FIRST_REPLY[:5])
    injector.install()
    if kind == "chat_fails":
        for fake in (h.first, h.second):
            fake.fail_next(503, {"error": {"message": "overloaded", "type": "server_error"}}, times=10)
    text = "/video a cat surfing" if kind == "video" else "tell me something"
    update_id = h.tg.push_message(USER, text)
    served = asyncio.create_task(h.feed(update_id))
    await eventually(lambda: served.done() or injector.crashed, within_s=15)
    done = served.done()
    assert injector.fired, f"the step {step} was never reached"
    await asyncio.gather(*injector.background)
    if injector.crashed:
        served.cancel()
        await restart(h, injector, update_id)
    else:
        assert done, "the request never ended"
        injector.disarm()
        assert h.app is not None
        await h.app.sweeper.sweep(now=utcnow() + timedelta(seconds=2 * h.settings.request_lease_seconds))
    await eventually(lambda: all(r["status"] in TERMINAL_STATUSES for r in h.requests(USER)), within_s=15)
    await asyncio.sleep(0.05)  # the last word to the user follows the close


def check(h: CoreHarness, kind: str, step: str, fault: str) -> None:
    requests = h.requests(USER)
    assert len(requests) <= 1
    assert all(r["status"] in TERMINAL_STATUSES for r in requests)
    assert h.credits(USER) == ledger_sum(h)
    got_answer = delivered(h, kind)
    texts = h.tg.texts(USER)
    if (step, fault) == ("delivered", "crash"):
        got_answer = False  # the benefit of the doubt (see the module docstring)
    if not requests:  # nothing was reserved: nothing charged, and nothing said about credits
        assert h.credits(USER) == START_CREDITS and not got_answer
        return
    [request] = requests
    charged, refunded = request["credits_charged"], request["credits_refunded"]
    assert refunded == (0 if got_answer else charged), (request["status"], got_answer, texts)
    assert h.credits(USER) == START_CREDITS - charged + refunded
    if fault == "blocked" and not got_answer:
        return  # nothing can reach a user who blocked the bot
    claims = [t for t in texts if REFUND_CLAIM.search(t)]
    if refunded:
        assert REFUND_CLAIM.search(" ".join(texts[-2:])), texts  # said last (the answer may follow a cut)
    else:
        assert not claims and got_answer, texts


@pytest.mark.parametrize(("kind", "step", "fault"), CASES, ids=[f"{k}-{s}-{f}" for k, s, f in CASES])
async def test_a_fault_at_any_step_loses_no_credit_and_says_what_happened(
        h: CoreHarness, kind: str, step: str, fault: str) -> None:
    await run_case(h, kind, step, fault)
    check(h, kind, step, fault)
    if kind == "video" and delivered(h, kind):
        assert h.replicate.creates == 1  # a job is resumed, never paid for twice
        video = next(m for m in h.tg.sent[USER] if m.media_kind == "video")
        assert video.file is not None and video.file.data == FILE_BYTES["mp4"]
