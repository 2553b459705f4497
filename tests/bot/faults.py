"""Fault injection at the steps of a request's life, in the real app (CoreHarness) and its loopback fakes.

A step is where the life of a request touches the outside: a statement the database is about to run,
a call a provider fake or the fake Bot API is about to answer. At the step the injector does one thing:

    cancel    the user sends /cancel then (concurrently with the step)
    crash     the process dies there: from that moment its database refuses every statement (raising
              `Crash`, which no handler catches, so nothing after that point in any task runs) and Telegram
              no longer knows its token; the test then starts a new app on the same database
    db_error  the database fails that statement (and every later one at that step) until healed
    db_bug    that statement fails once for a reason retrying cannot fix (as a bug in our SQL would)
    blocked   the user blocks the bot: every later send to them answers 403

Database steps are matched on the SQL SQLAlchemy emits (`STATEMENTS`); the other steps on the fakes' calls.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from sqlalchemy import event
from sqlalchemy.exc import OperationalError, ProgrammingError

from tests.bot.core_harness import CoreHarness
from tests.fakes.base import Call

STATEMENTS = {
    "reserve": lambda sql: sql.startswith("INSERT INTO requests"),
    "job_id": lambda sql: sql.startswith("UPDATE requests SET") and "job_provider=" in sql,
    "delivering": lambda sql: sql.startswith("UPDATE requests SET delivering_at="),
    "delivered": lambda sql: sql.startswith("UPDATE requests SET delivered_at="),
    "close": lambda sql: sql.startswith("UPDATE requests SET status=") and "finished_at=" in sql,
    "refund": lambda sql: sql.startswith("UPDATE users SET credits=(users.credits +"),
}
CALL_STEPS = ("provider", "delivery")


class Crash(BaseException):
    """The process dies here: nothing after this point runs (no `except Exception` catches it)."""


@dataclass
class Injector:
    h: CoreHarness
    user: int
    step: str
    fault: str
    answer_marker: str  # a piece of the answer's text, or "sendVideo"
    fired: bool = False
    healed: bool = False
    crashed: bool = False
    background: list[asyncio.Task[Any]] = field(default_factory=list)

    def install(self) -> None:
        assert self.h.app is not None
        event.listen(self.h.app.engine.sync_engine, "before_cursor_execute", self._on_sql)
        for fake in (self.h.first, self.h.second, self.h.replicate):
            fake.on_call = self._on_provider
        self.h.tg.on_call = self._on_telegram

    # --- detecting the step ----------------------------------------------------------------------
    def _on_sql(self, _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if self.crashed:
            raise Crash("the process is gone")
        sql = " ".join(statement.split())
        if self.step not in STATEMENTS or not STATEMENTS[self.step](sql):
            return
        if self.fault == "db_error" and not self.healed:
            self.fired = True
            raise OperationalError(statement, params, sqlite3.OperationalError("database is locked"))
        if self.fault == "db_bug" and not self.fired:
            self.fired = True
            raise ProgrammingError(statement, params, sqlite3.ProgrammingError("a bug in the statement"))
        if not self.fired:
            self.fired = True
            self._act_now()

    async def _on_provider(self, call: Call) -> None:
        first_call = call.method == "POST" and ("chat/completions" in call.path or "predictions" in call.path)
        if self.step == "provider" and first_call and not self.fired:
            self.fired = True
            await self._act_and_wait()

    async def _on_telegram(self, call: Call) -> None:
        if self.step != "delivery" or self.fired:
            return
        body = unquote_plus(call.body.decode("utf-8", "replace"))
        if self.answer_marker in call.path or ("sendMessage" in call.path and self.answer_marker in body):
            self.fired = True
            await self._act_and_wait()

    # --- acting ----------------------------------------------------------------------------------
    def _act_now(self) -> None:
        """At a database statement (synchronous, inside the statement): cancel concurrently, or die."""
        if self.fault == "cancel":
            self.background.append(asyncio.get_running_loop().create_task(self.h.say(self.user, "/cancel")))
        elif self.fault == "blocked":
            self.h.tg.block(self.user)
        elif self.fault == "crash":
            self.die()
            raise Crash("the process died at " + self.step)

    async def _act_and_wait(self) -> None:
        """At a fake's call (before it answers): the cancel is handled while the call waits."""
        if self.fault == "cancel":
            await self.h.say(self.user, "/cancel")
        elif self.fault == "blocked":
            self.h.tg.block(self.user)
        elif self.fault == "crash":
            self.die()
            if self.step == "provider":
                await asyncio.sleep(3600)  # the process that waited for this answer is gone

    def die(self) -> None:
        assert self.h.app is not None
        self.crashed = True
        self.h.tg.token = self.h.tg.token.replace("AA", "BB", 1)  # the dead process's bot is refused (401)
        if self.h.app.scheduler.running:
            self.h.app.scheduler.shutdown(wait=False)

    def disarm(self) -> None:
        """The next process: the fakes answer as usual."""
        self.healed = True
        for fake in (self.h.first, self.h.second, self.h.replicate, self.h.tg):
            fake.on_call = None
