"""Database round trips on the path of one chat message, counted in the real app (in-process).

The app is built by the same factory as `python -m bot`, against the loopback fake Bot API and a fake
OpenAI-compatible provider; every statement and every commit on its engine is counted while messages are
served one after another: first messages of new users, then messages of a returning user. A round trip
is one transaction (group commit makes the statements inside one a single wait for the caller).
Target: at most 4 round trips on the success path of a chat message. Figures only, no asserts.

    .venv/bin/python bench/request_path.py [--messages 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from tests.bot.core_harness import CoreHarness  # noqa: E402

FIRST_USER = 20_000_000


class Counter:
    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0
        self.kinds: dict[str, int] = {}

    def statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements += 1
        words = statement.split()
        key = " ".join(words[:3]) if words else "?"
        self.kinds[key] = self.kinds.get(key, 0) + 1

    def commit(self, _conn: Any) -> None:
        self.commits += 1


async def measure(h: CoreHarness, users: list[int], text: str) -> tuple[list[int], list[int], Counter]:
    assert h.app is not None
    total = Counter()
    per_statements, per_commits = [], []
    for user in users:
        counter = Counter()
        engine = h.app.engine.sync_engine
        event.listen(engine, "before_cursor_execute", counter.statement)
        event.listen(engine, "commit", counter.commit)
        try:
            await h.say(user, text)
            await h.app.writes.aclose()  # every write of this message committed
        finally:
            event.remove(engine, "before_cursor_execute", counter.statement)
            event.remove(engine, "commit", counter.commit)
        per_statements.append(counter.statements)
        per_commits.append(counter.commits)
        total.statements += counter.statements
        total.commits += counter.commits
        for key, n in counter.kinds.items():
            total.kinds[key] = total.kinds.get(key, 0) + n
    return per_statements, per_commits, total


def show(title: str, statements: list[int], commits: list[int], total: Counter, n: int) -> None:
    print(f"{title}: round trips (transactions) per message: median {statistics.median(commits):g}, "
          f"max {max(commits)}; statements per message: median {statistics.median(statements):g}")
    for key, count in sorted(total.kinds.items(), key=lambda kv: -kv[1]):
        print(f"    {count / n:5.2f} x {key}")


async def run(messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with CoreHarness.start(Path(tmp), stream_edit_interval=1.0, free_credits=1000) as h:
            await h.say(FIRST_USER - 1, "warm up")
            new_users = list(range(FIRST_USER, FIRST_USER + messages))
            s, c, total = await measure(h, new_users, "hello")
            show(f"{messages} first messages of new users", s, c, total, messages)
            s, c, total = await measure(h, [FIRST_USER] * messages, "and again")
            show(f"{messages} messages of a returning user", s, c, total, messages)
            print(f"target: at most 4 round trips on the success path: "
                  f"{'OK' if statistics.median(c) <= 4 else 'MISSED'} (median {statistics.median(c):g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.messages))


if __name__ == "__main__":
    main()
