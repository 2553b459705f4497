"""A hypothesis state machine over the interleavings of a user's requests in the real app.

Rules: a message, /cancel, the provider answering, the provider failing, a crash and restart (the process
dies where it is: its database refuses every later statement, Telegram forgets its token; a new app
starts on the same database), a duplicate update, a sweep with every lease expired. The provider holds
each chat call until a rule decides it, so the interleavings are the machine's, not the clock's.

After every step:
    every balance equals the sum of its ledger rows, and none is negative;
    a request that reached a terminal state never leaves it, nor changes its refund;
    a terminal request is refunded all its credits or none, and refunded if and only if nothing of its
    answer reached the user (a crash between Telegram taking an answer and the database recording it
    is the one moment that cannot be told apart: such a request gets the benefit of the doubt);
and at the end, after the provider answered what it held and one sweep: every request is terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pydantic import SecretStr
from sqlalchemy import event

from db.models import TERMINAL_STATUSES
from db.periods import utcnow
from tests.bot.core_harness import CoreHarness, eventually
from tests.bot.faults import Crash
from tests.fakes.base import Call
from tests.fakes.openai import FakeOpenAI

USER = 4004
OVERLOADED = {"error": {"message": "overloaded", "type": "server_error"}}


class RequestLives(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.harness = CoreHarness.start(Path(self.tmp.name), free_credits=6)
        self.h = self.run(self.harness.__aenter__())
        self.sent: list[int] = []  # update ids
        self.count = 0
        self.waiting: list[tuple[str, asyncio.Future[str]]] = []
        self.decided: dict[str, str] = {}
        self.tasks: list[asyncio.Task[Any]] = []
        self.terminal: dict[int, tuple[str, int]] = {}
        self.doubtful: set[int] = set()  # in flight when a process crashed
        for fake in (self.h.first, self.h.second):
            fake.on_call = functools.partial(self._hold, fake)
        self.run(self.h.say(USER, "/start"))
        self._tune()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def _tune(self) -> None:
        assert self.h.app is not None
        self.h.app.life.durable.retry_delays = (0.01,)

    async def _hold(self, fake: FakeOpenAI, call: Call) -> None:
        """The provider's answer to each new question waits for a rule to decide it."""
        if "chat/completions" not in call.path or not isinstance(call.json, dict):
            return
        question = str(call.json["messages"][-1]["content"])
        if question not in self.decided:
            future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self.waiting.append((question, future))
            self.decided[question] = await future
            if self.decided[question] == "fail":
                for fake in (self.h.first, self.h.second):
                    fake.fail_next(503, OVERLOADED, times=3)
        fake.reply_text = f"{question}-answer arrives in words"

    async def _finish_tasks(self) -> None:
        if self.tasks:
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 15)

    async def _settle(self) -> None:
        await asyncio.sleep(0.08)

    # --- rules ---------------------------------------------------------------------------------
    @rule()
    def message(self) -> None:
        self.count += 1
        update_id = self.h.tg.push_message(USER, f"q{self.count}")
        self.sent.append(update_id)
        self.tasks.append(self.loop.create_task(self.h.feed(update_id)))
        self.run(self._settle())

    @precondition(lambda self: self.waiting)
    @rule(outcome=st.sampled_from(["ok", "fail"]))
    def provider_decides(self, outcome: str) -> None:
        _question, future = self.waiting.pop(0)
        if not future.done():
            future.set_result(outcome)
        self.run(self._settle())

    @rule()
    def cancel(self) -> None:
        self.run(self.h.say(USER, "/cancel"))
        self.run(self._settle())

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def duplicate_update(self, data: st.DataObject) -> None:
        update_id = data.draw(st.sampled_from(self.sent))
        self.tasks.append(self.loop.create_task(self.h.feed(update_id)))
        self.run(self._settle())

    @rule()
    def sweep(self) -> None:
        assert self.h.app is not None
        later = utcnow() + timedelta(seconds=2 * self.h.settings.request_lease_seconds)
        self.run(self.h.app.sweeper.sweep(now=later))
        self.run(self._settle())

    @rule()
    def crash_and_restart(self) -> None:
        old = self.h.app
        assert old is not None
        self.doubtful |= {r["id"] for r in self.h.requests(USER) if r["status"] not in TERMINAL_STATUSES}

        def dead(*_args: Any) -> None:
            raise Crash("the process is gone")

        event.listen(old.engine.sync_engine, "before_cursor_execute", dead)
        if old.scheduler.running:
            old.scheduler.shutdown(wait=False)
        self.h.tg.token = self.h.tg.token[:-1] + ("x" if self.h.tg.token[-1] != "x" else "y")
        for _question, future in self.waiting:  # the dead process's calls: whatever they get, it is gone
            if not future.done():
                future.set_result("fail")
        self.waiting.clear()
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.h.app = None
        self.h.settings = self.h.settings.model_copy(update={"bot_token": SecretStr(self.h.tg.token)})
        self.run(self.h.boot())
        for fake in (self.h.first, self.h.second):
            fake.script.clear()
        self._tune()
        self.run(self._settle())

    # --- invariants ----------------------------------------------------------------------------
    def delivered(self, prompt: str) -> bool:
        marker = f"{prompt}-answer"
        return any(marker in m.plain or any(marker in text for text in m.history)
                   for m in self.h.tg.sent.get(USER, []))

    @invariant()
    def balances_equal_their_ledger(self) -> None:
        row = self.h.rows("SELECT credits, (SELECT COALESCE(SUM(delta), 0) FROM credit_ledger WHERE user_id = ?) "
                          "AS ledger FROM users WHERE id = ?", USER, USER)
        if row:
            assert row[0]["credits"] == row[0]["ledger"] and row[0]["credits"] >= 0

    @invariant()
    def terminal_states_are_final_and_refunds_match_delivery(self) -> None:
        for r in self.h.requests(USER):
            if r["status"] not in TERMINAL_STATUSES:
                continue
            seen = (r["status"], r["credits_refunded"])
            assert self.terminal.setdefault(r["id"], seen) == seen, (r["id"], self.terminal[r["id"]], seen)
            charged, refunded = r["credits_charged"], r["credits_refunded"]
            assert refunded in (0, charged)
            if r["status"] == "refused":
                assert charged == 0
                continue
            got = self.delivered(r["prompt"])
            if refunded and got:
                assert r["id"] in self.doubtful, f"request {r['id']} delivered and refunded"
            if not refunded and charged:
                assert got, f"request {r['id']} kept its charge but nothing reached the user"

    def teardown(self) -> None:
        try:
            for _question, future in self.waiting:
                if not future.done():
                    future.set_result("ok")
            self.run(self._finish_tasks())
            self.sweep()
            self.run(eventually(lambda: all(r["status"] in TERMINAL_STATUSES for r in self.h.requests(USER)),
                                within_s=15))
            self.terminal_states_are_final_and_refunds_match_delivery()
            self.balances_equal_their_ledger()
        finally:
            with contextlib.suppress(BaseException):
                self.run(self.harness.__aexit__(None, None, None))
            self.loop.close()
            self.tmp.cleanup()


RequestLives.TestCase.settings = settings(
    max_examples=10, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_request_lives_keep_every_credit = RequestLives.TestCase
